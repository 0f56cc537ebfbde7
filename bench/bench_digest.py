"""The weekly digest and the grid's announcements: what they cost.

1. ``send_digest`` for 10,000 opted-in people (default ``--people``), each with three
   announcements and the example registry's new apps, to an aiosmtpd server on loopback in a
   process of its own (so that the server's work does not share the bench's interpreter).
   Prints mails per second; target >= 200. Every mail must be accepted by the server and
   recorded as sent, or the exit status is 1.
2. ``GET /`` in process (Starlette's TestClient over ``create_app``, no network) for a signed-in
   member of ``staff``: one portal whose database has three current announcements for everyone,
   one without any. The two are asked alternately, round after round, and the medians of the
   per-request times are compared; target: with announcements within 10 % of without.

    python bench/bench_digest.py [--people 10000] [--rounds 7] [--requests 300]
    python bench/bench_digest.py --db postgresql+psycopg://postgres@127.0.0.1/postgres

Both figures are printed, not enforced: they depend on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import sqlalchemy as sa

from launcher import db
from launcher.app import create_app
from launcher.auth.user import User
from launcher.engage import announcements
from launcher.engage.digest import iso_week, send_digest
from launcher.models import DigestSubscriber, table
from launcher.registry import load_registry
from launcher.settings import Settings, load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about the httpx fork
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "config" / "apps.yaml"
SECRET = "bench-secret-key-" + "x" * 32
BASE = "http://127.0.0.1:8000"

# The SMTP server: accepts everything, counts the mails, prints the count when stopped.
SERVER = """
import signal, sys, threading
from aiosmtpd.controller import Controller

class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"

controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
stop.wait()
controller.stop()
print(Count.n, flush=True)
"""

NEWS = (
    ("Het intranet staat nu ook op je telefoon", "Open het portaal op je telefoon.", "nl"),
    ("The intranet is on your phone now", "Open the portal on your phone.", ""),
    ("Griepprik vanaf 1 oktober", "Maak een afspraak via het rooster.\nDe prik is gratis.", ""),
)


def _settings(url: str, var: Path, **extra: object) -> Settings:
    return load_settings(
        secret_key=SECRET,
        base_url=BASE,
        oidc_issuer="http://127.0.0.1:9/unreachable-issuer",  # never asked
        oidc_client_id="bench",
        oidc_client_secret="bench-client-secret",
        database_url=url,
        apps_file=APPS,
        spool_dir=var / "spool",
        **extra,
    )


def _fresh(url: str) -> sa.Engine:
    engine = db.make_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    with engine.begin() as conn:
        for t in reversed(md.sorted_tables):
            conn.execute(sa.text(f'DROP TABLE "{t.name}"'))
    db.upgrade(engine)
    return engine


def _announce(engine: sa.Engine, today: dt.date) -> None:
    for title, body, language in NEWS:
        draft = announcements.Draft(
            title, body, None, today - dt.timedelta(days=1), today + dt.timedelta(days=7), (),
            language,
        )  # fmt: skip
        announcements.create(engine, draft, "bench-editor")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_digest(url: str, var: Path, people: int) -> bool:
    engine = _fresh(url)
    registry = load_registry(APPS)
    now = dt.datetime.now(dt.UTC)
    _announce(engine, now.date())
    rows = [
        {
            "user_id": f"{n:032x}",
            "email": f"person{n}@zorggroep-noord.example",
            "groups": "staff,clinicians" if n % 5 == 0 else "staff",
            "language": ("nl", "en", "")[n % 3],
            "created_at": now,
            "last_week": None,
        }
        for n in range(people)
    ]
    with engine.begin() as conn:
        for start in range(0, people, 1000):
            conn.execute(sa.insert(table(DigestSubscriber)), rows[start : start + 1000])

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        settings = _settings(
            url, var, smtp_url=f"smtp://127.0.0.1:{port}", mail_from="intranet@example.org"
        )
        cpu, started = time.process_time(), time.perf_counter()
        report = send_digest(engine, settings, registry, now=now)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        server.send_signal(signal.SIGTERM)
        received = int(server.communicate(timeout=30)[0].strip() or 0)
    with engine.connect() as conn:
        marked = conn.execute(
            sa.select(sa.func.count())
            .select_from(table(DigestSubscriber))
            .where(table(DigestSubscriber).c.last_week == iso_week(now.date()))
        ).scalar_one()
    engine.dispose()
    rate = report.sent / elapsed
    print(
        f"digest: {report.sent:,} mails in {elapsed:.1f} s = {rate:,.0f} mails/s "
        f"({'PASS' if rate >= 200 else 'FAIL'}, target >= 200); bench CPU {cpu:.1f} s "
        f"= {cpu / max(report.sent, 1) * 1e3:.2f} ms/mail; server received {received:,}, "
        f"marked sent {marked:,}, failed {len(report.failed)}"
    )
    return report.sent == received == marked == people and not report.failed


def _portal(url: str, var: Path) -> tuple[TestClient, dict[str, str]]:
    app = create_app(_settings(url, var))
    context = app.state.context
    context.registry.reload_if_changed()
    staff = User(
        user_id="u" * 32, sub="bench", name="Bench", email="b@x.example", groups=("staff",)
    )
    cookie = context.sessions.dumps(context.sessions.new(staff, None))
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    client.cookies.set(context.settings.session_cookie, cookie)
    return client, {"accept-language": "nl"}


def bench_grid(url_without: str, url_with: str, var: Path, rounds: int, requests: int) -> None:
    for url in (url_without, url_with):
        _fresh(url).dispose()
    engine = db.make_engine(url_with)
    _announce(engine, dt.date.today())
    engine.dispose()
    portals = {
        "without": _portal(url_without, var / "a"),
        "with 3": _portal(url_with, var / "b"),
    }
    times: dict[str, list[float]] = {name: [] for name in portals}
    for client, headers in portals.values():  # warm up: templates, and "seen" written once
        for _ in range(20):
            assert client.get("/", headers=headers).status_code == 200
    client, headers = portals["with 3"]
    shown = client.get("/", headers=headers).text
    assert shown.count('class="announcement"') == 3, "the announcements are not on the grid"
    for _ in range(rounds):
        for name, (client, headers) in portals.items():
            for _ in range(requests):
                started = time.perf_counter()
                client.get("/", headers=headers)
                times[name].append(time.perf_counter() - started)
    without, with_ = (statistics.median(times[n]) * 1e3 for n in portals)
    ratio = with_ / without
    print(
        f"grid GET /: median {without:.2f} ms without announcements, {with_:.2f} ms with three "
        f"= {ratio:.3f}x ({'PASS' if ratio <= 1.10 else 'FAIL'}, target within 10 %); "
        f"{rounds} rounds of {requests} requests each, alternating"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as tmp:
        var = Path(tmp)
        os.environ.pop("LAUNCHER_DATABASE_URL", None)
        url = args.db or f"sqlite:///{var}/digest.db"
        ok = bench_digest(url, var, args.people)
        # the grid compares two databases side by side: SQLite files, whatever --db says
        bench_grid(
            f"sqlite:///{var}/a.db", f"sqlite:///{var}/b.db", var, args.rounds, args.requests
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
