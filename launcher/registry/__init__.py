"""The app registry: ``apps.yaml`` -> a validated, immutable :class:`Registry`.

- ``schema.py``: the format, as pydantic models (``App``, ``Category``, ``Department``,
  ``PortalSection``, ``Localized`` text) and the :class:`Registry` they make; its JSON Schema.
- ``loader.py``: YAML -> Registry, where every problem of the file is reported at once as
  ``file:line: field: message``, so that an admin can fix a broken edit from the message alone.
- ``holder.py``: :class:`RegistryHolder`, the registry in use, reloaded when the file changes;
  a broken edit keeps the last good registry serving.
- ``launch_urls.py``: where a launch goes (placeholders filled in, or an OIDC third-party
  initiated login) and :class:`LaunchTargets`, the cache that makes a click a dict lookup.

Import from here: ``from launcher.registry import App, RegistryHolder, load_registry``.
"""

from __future__ import annotations

from launcher.registry.holder import RegistryHolder
from launcher.registry.launch_urls import LaunchTargets, launch_url
from launcher.registry.loader import MAX_BYTES, load_registry, parse_registry
from launcher.registry.schema import (
    ICON_DIR,
    ICON_FILE,
    PLACEHOLDERS,
    App,
    Category,
    Department,
    DisplayEntry,
    Document,
    Localized,
    PortalSection,
    Registry,
    Text,
    json_schema,
)

__all__ = [
    "ICON_DIR",
    "ICON_FILE",
    "MAX_BYTES",
    "PLACEHOLDERS",
    "App",
    "Category",
    "Department",
    "DisplayEntry",
    "Document",
    "LaunchTargets",
    "Localized",
    "PortalSection",
    "Registry",
    "RegistryHolder",
    "Text",
    "json_schema",
    "launch_url",
    "load_registry",
    "parse_registry",
]
