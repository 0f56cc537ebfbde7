"""The running portal's parts as one typed object.

``create_app`` (launcher/app.py) builds a :class:`Context` once and keeps it on
``app.state.context``; views read it through ``context_of(request)``. Views and app.py both
import this module, so no view ever imports app.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa
from starlette.templating import Jinja2Templates

from launcher import app_requests
from launcher.auth.oidc import OIDCClient
from launcher.auth.session import Revocations, SessionCodec
from launcher.auth.spent import SpentTokens
from launcher.engage import announcements
from launcher.events import EventStore
from launcher.metrics import Metrics
from launcher.registry import LaunchTargets, RegistryHolder
from launcher.settings import Settings


@dataclass
class Context:
    """Everything a handler needs, built once per app by ``create_app``."""

    settings: Settings
    engine: sa.Engine
    registry: RegistryHolder
    events: EventStore
    revocations: Revocations
    sessions: SessionCodec
    oidc: OIDCClient
    templates: Jinja2Templates
    spent: SpentTokens  # used sign-in states and logout-token jtis (launcher/auth/spent.py)
    metrics: Metrics = field(default_factory=Metrics)
    launch_targets: LaunchTargets = field(default_factory=LaunchTargets)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    # what the grid's banner needs from the database, kept for a few seconds per worker
    announcements: announcements.Current = field(default_factory=announcements.Current)
    notices: app_requests.Pending = field(default_factory=app_requests.Pending)
