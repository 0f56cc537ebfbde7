"""The registry in use: reloaded when ``apps.yaml`` changes; a bad edit keeps the last good."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

from launcher.audit import audit
from launcher.errors import RegistryError
from launcher.registry.loader import load_registry
from launcher.registry.schema import Registry

log = logging.getLogger(__name__)


class RegistryHolder:
    """The registry in use, reloaded when the file changes; a broken edit keeps the last good."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []
        self.loaded_at: dt.datetime | None = None
        self._signature: object = object()  # matches no stat result: the first call loads
        self._current: Registry | None = None

    @property
    def current(self) -> Registry:
        if self._current is None:
            raise RegistryError(self.errors or [f"{self.path}: no registry loaded"])
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def timezone(self) -> ZoneInfo:
        """The portal's time zone (the default until a registry is loaded)."""
        return ZoneInfo(self._current.portal.timezone if self._current else "Europe/Amsterdam")

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        # ctime and inode as well: `cp -p` keeps the mtime, and a rename swaps the inode
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)

    def reload_if_changed(self) -> bool:
        """Reload when the file changed on disk. Returns True when a new registry is in use."""
        signature = self._stat()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            registry = load_registry(self.path)
        except RegistryError as exc:
            self.errors = exc.problems
            audit("registry_reload", outcome="refused", path=str(self.path), error=str(exc))
            if self._current is None:
                log.error("app registry %s is invalid:\n%s", self.path, exc)
            else:
                log.error(
                    "app registry %s is invalid; keeping the last good one:\n%s", self.path, exc
                )
            return False
        self._current = registry
        self.errors = []
        self.loaded_at = dt.datetime.now(dt.UTC)
        audit("registry_reload", outcome="ok", path=str(self.path), apps=len(registry.apps))
        log.info("app registry loaded from %s: %d apps", self.path, len(registry.apps))
        return True
