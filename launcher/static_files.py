"""Static files with content hashes: ``/static/style.css?v=<hash>`` is cached for a year.

A page names its scripts and styles through ``static(name)`` (a template global), which adds the
first 12 hex digits of the file's SHA-256; a new release changes the URL, so browsers may keep
a copy as long as they like (``immutable``). Requests without ``v`` (or with an old one) are
answered with ``no-cache``: the browser revalidates with the ETag.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from launcher import assets

YEAR = 365 * 24 * 60 * 60


@cache
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def static_url(name: str, root: Path = assets.STATIC) -> str:
    """``/static/<name>?v=<hash of its content>`` (hashed once per process)."""
    return f"/static/{name}?v={_digest(root / name)}"


class HashedStatic(StaticFiles):
    """StaticFiles whose hashed URLs are cached for a year and the others revalidated."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            query = scope.get("query_string", b"").decode("latin-1")
            root = Path(str(self.directory))
            wanted = query.removeprefix("v=")
            current = wanted and (root / path).is_file() and wanted == _digest(root / path)
            response.headers["Cache-Control"] = (
                f"public, max-age={YEAR}, immutable" if current else "no-cache"
            )
        return response
