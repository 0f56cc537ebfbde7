"""Where the pages and static files are: ``templates/`` and ``static/``.

In a source checkout they sit at the top of the repository, beside ``launcher/``; an installed
wheel carries them inside the package (pyproject.toml maps them to ``launcher/templates`` and
``launcher/static``), so the packaged copy is looked for first.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    packaged = _PACKAGE / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name


TEMPLATES = _find("templates")
STATIC = _find("static")
ICONS = STATIC / "icons"  # the built-in icon set
