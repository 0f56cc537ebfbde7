"""The identity provider's side of the demo history: an Entra ID sign-in log that matches it.

For every generated launch of an app with ``signin_ids`` the provider logs a sign-in a few
seconds later (through the portal). People also reach apps around the portal (a bookmark, the
Teams client, a link in a mail): a few of those right after go-live, more month by month for
the apps in :data:`DRIFT`. Miro, which has no tile, is signed in to more and more; a little
Canva too. Some records are failed or non-interactive, as in a real export, and are skipped
by the import (and counted in its summary as skipped).

The log is written as Microsoft Graph ``signIn`` objects in gzipped JSON lines (what
deploy/kubernetes/base/fetch-signins.py writes) and imported through
``launcher.signins.importer.import_files``, the path a real export takes. The user ids are the
raw ids the generated people's pseudonyms were made from (launcher/demo/data.py), so the
import pseudonymises them to the same stored ids as their launches.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from launcher.events import Launch
from launcher.registry import Registry

FILE = "demo-signins-entra.jsonl.gz"
START_SHARE = 0.88  # share of an app's sign-ins through the portal right after go-live
# app id -> how much of that share goes to bookmarks each month after go-live
DRIFT = {"outlook": 0.035, "sharepoint": 0.04, "google-workspace": 0.045, "intranet-news": 0.03}
OTHER_DRIFT = 0.006
FLOOR = 0.2
# apps without a tile: (Entra appId, display name, chance per visit at go-live, growth/month)
UNREGISTERED = (
    ("0b1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "Miro", 0.06, 0.012),
    ("6e7f8a9b-0c1d-4e2f-9a3b-4c5d6e7f8a9b", "Canva", 0.015, 0.002),
)
FAILED, NON_INTERACTIVE = 0.03, 0.08


def share(app_id: str, months_since_go_live: int) -> float:
    """The share of ``app_id``'s sign-ins that come through the portal in that month."""
    drift = DRIFT.get(app_id, OTHER_DRIFT)
    return max(FLOOR, START_SHARE - drift * months_since_go_live)


class Log:
    """Writes the month's sign-ins as they are generated, one month at a time."""

    def __init__(self, path: Path, registry: Registry, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rnd = random.Random(seed + 1)  # noqa: S311 (a story for a demo, no secret)
        self.apps = {
            a.id: (a.signin_ids[0], a.name.get("en")) for a in registry.apps if a.signin_ids
        }
        self._file: IO[str] = gzip.open(path, "wt", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.records = 0

    def month(
        self,
        launches: Sequence[Launch],
        visits: Sequence[tuple[dt.datetime, str]],
        subjects: Mapping[str, str],
        months_since_go_live: int,
        now: dt.datetime,
    ) -> None:
        """The sign-ins of one month: after each launch, around the portal, and to the apps
        without a tile on some of the people's days (``visits``: (time, user id))."""
        rnd = self.rnd
        for e in launches:
            app = self.apps.get(e.app_id)
            if app is None:
                continue
            subject = subjects[e.user_id]
            self._write(e.ts + dt.timedelta(seconds=rnd.randrange(2, 15)), subject, app, now)
            s = share(e.app_id, months_since_go_live)
            around = (1 - s) / s  # sign-ins around the portal per launch, on average
            for _ in range(int(around) + (rnd.random() < around % 1)):
                later = dt.timedelta(seconds=rnd.randrange(3600, 6 * 3600))
                self._write(e.ts + later, subject, app, now)
        for ts, user in visits:
            for app_id, name, chance, growth in UNREGISTERED:
                if rnd.random() < chance + growth * months_since_go_live:
                    later = dt.timedelta(seconds=rnd.randrange(600, 4 * 3600))
                    self._write(ts + later, subjects[user], (app_id, name), now)

    def _write(self, ts: dt.datetime, subject: str, app: tuple[str, str], now: dt.datetime) -> None:
        if ts > now:
            return
        rnd = self.rnd
        record: dict[str, Any] = {
            "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "createdDateTime": ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "userId": subject,
            "userPrincipalName": f"{subject[:8]}@demo.example",  # in a real log; never stored
            "appId": app[0],
            "appDisplayName": app[1],
            "isInteractive": True,
            "status": {"errorCode": 0, "failureReason": "Other."},
            "clientAppUsed": "Browser",
        }
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.records += 1
        roll = rnd.random()  # now and then a failed or a background sign-in as well
        if roll < FAILED + NON_INTERACTIVE:
            extra = {**record, "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4))}
            if roll < FAILED:
                extra["status"] = {"errorCode": 50126, "failureReason": "Invalid password."}
            else:
                extra["isInteractive"] = False
            self._file.write(json.dumps(extra, separators=(",", ":")) + "\n")
            self.records += 1

    def close(self) -> None:
        self._file.close()
