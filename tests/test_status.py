"""App status (launcher/status.py): the registry's status_url, the checks against a real HTTPS
server on loopback (200, 500, a hang, a redirect), one check per app and minute however many
workers claim at once (on both databases), and what the tile, /admin and Prometheus show."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import ipaddress
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest

from launcher import db, grid, i18n, status
from launcher.errors import RegistryError
from launcher.metrics import Metrics
from launcher.registry import RegistryHolder, json_schema, parse_registry
from launcher.status import Board, Result
from tests.conftest import EXAMPLE_APPS, MakePortal
from tests.helpers import ADMIN, STAFF, wait_until

NOW = dt.datetime(2026, 12, 12, 9, 0, tzinfo=dt.UTC)


# --- the registry ---------------------------------------------------------------------------
def _app(extra: str) -> str:
    return f"apps:\n  - id: rooster\n    name: Rooster\n    url: https://rooster.example/\n{extra}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("    status_url: http://rooster.example/health\n", "https://", id="http"),
        pytest.param(
            "    status_url: https://rooster.example/health?u={email}\n",
            "no placeholders",
            id="placeholder",
        ),
        pytest.param("    status_url: https:///health\n", "https://", id="no host"),
        pytest.param("    status_url: https://ro oster.example/\n", "spaces", id="space"),
    ],
)
def test_a_status_url_must_be_a_literal_https_url(line: str, message: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_registry(_app(line), source="apps.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("apps.yaml:5: apps[0] (id: rooster).status_url: "), problem
    assert message in problem


def test_a_status_url_is_optional_and_in_the_schema() -> None:
    registry = parse_registry(_app("    status_url: https://rooster.example/health\n"), source="x")
    assert registry.apps[0].status_url == "https://rooster.example/health"
    assert parse_registry(_app(""), source="x").apps[0].status_url is None
    assert "status_url" in json_schema()["$defs"]["App"]["properties"]


# --- a real HTTPS server on loopback ----------------------------------------------------------
@dataclass
class Site:
    base: str
    trust: ssl.SSLContext  # trusts the site's self-signed certificate
    hits: collections.Counter[str]

    def url(self, kind: str) -> str:
        """A fresh path that answers as ``kind`` (ok, fail, hang, redirect)."""
        return f"{self.base}/{kind}/{uuid.uuid4().hex}"


def _certificate(folder: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    cert_file, key_file, pem = _certificate(tmp_path_factory.mktemp("tls"))
    hits: collections.Counter[str] = collections.Counter()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits[self.path] += 1
            kind = self.path.split("/")[1]
            if kind == "hang":
                release.wait(30)
                return
            code = {"ok": 200, "fail": 500, "redirect": 302}[kind]
            self.send_response(code)
            if kind == "redirect":
                self.send_header("Location", f"https://127.0.0.1:{port}/ok/after-redirect")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(
            f"https://127.0.0.1:{port}", ssl.create_default_context(cadata=pem.decode()), hits
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _check(site: Site, url: str, total: float = status.TOTAL_TIMEOUT) -> Result:
    async def go() -> Result:
        async with status.new_client(site.trust) as client:
            return await status.check(client, url, total)

    return asyncio.run(go())


def test_a_2xx_answer_is_up_and_a_5xx_may_be_down(site: Site) -> None:
    assert _check(site, site.url("ok")) == Result(True, 200, "HTTP 200")
    assert _check(site, site.url("fail")) == Result(False, 500, "HTTP 500")


def test_a_redirect_counts_as_up_and_is_not_followed(site: Site) -> None:
    assert _check(site, site.url("redirect")) == Result(True, 302, "HTTP 302")
    assert site.hits["/ok/after-redirect"] == 0


def test_a_server_that_never_answers_may_be_down(site: Site) -> None:
    url = site.url("hang")
    result = _check(site, url, total=0.5)
    assert result == Result(False, None, "no answer within 0.5 s")
    assert site.hits[url.removeprefix(site.base)] == 1


def test_a_certificate_that_does_not_verify_may_be_down(site: Site) -> None:
    async def go() -> Result:
        async with status.new_client() as client:  # the system's trust: not our certificate
            return await status.check(client, site.url("ok"))

    result = asyncio.run(go())
    assert not result.ok and result.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail


def test_only_https_urls_are_checked(site: Site) -> None:
    with pytest.raises(ValueError, match="only https"):
        _check(site, site.url("ok").replace("https://", "http://"))


# --- one check per app and minute, across workers --------------------------------------------
def _engines(url: str, n: int) -> list[sa.Engine]:
    return [db.make_engine(url) for _ in range(n)]


def test_workers_claiming_at_once_claim_each_app_once(database_url: str) -> None:
    apps = ["ehr", "rooster", "teams"]
    engines = _engines(database_url, 6)  # one per "worker process"
    start = threading.Barrier(len(engines))
    claimed: list[list[str]] = [[] for _ in engines]

    def worker(i: int) -> None:
        start.wait()
        claimed[i] = status.claim(engines[i], apps, NOW)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a for c in claimed for a in c) == apps
    # within the minute nobody claims again; after it, one worker does
    assert status.claim(engines[0], apps, NOW + dt.timedelta(seconds=59)) == []
    assert status.claim(engines[1], apps, NOW + dt.timedelta(seconds=61)) == apps
    assert status.claim(engines[2], apps, NOW + dt.timedelta(seconds=62)) == []
    for engine in engines:
        engine.dispose()


def test_since_moves_only_when_the_state_changes(database_url: str) -> None:
    engine = db.make_engine(database_url)
    down, up = Result(False, 503, "HTTP 503"), Result(True, 200, "HTTP 200")
    status.claim(engine, ["ehr"], NOW)
    assert status.read(engine)["ehr"].ok is None  # claimed, not answered yet
    status.record(engine, "ehr", down, NOW)
    status.record(engine, "ehr", down, NOW + dt.timedelta(minutes=1))
    state = status.read(engine)["ehr"]
    assert (state.ok, state.status_code, state.since) == (False, 503, NOW)
    status.record(engine, "ehr", up, NOW + dt.timedelta(minutes=2))
    state = status.read(engine)["ehr"]
    assert (state.ok, state.detail, state.since) == (
        True,
        "HTTP 200",
        NOW + dt.timedelta(minutes=2),
    )
    engine.dispose()


def _holder(tmp_path: Path, urls: dict[str, str]) -> RegistryHolder:
    apps = "".join(
        f"  - id: {app_id}\n    name: {app_id}\n    url: https://{app_id}.example/\n"
        f"    status_url: {url}\n"
        for app_id, url in urls.items()
    )
    path = tmp_path / "apps.yaml"
    path.write_text(f"apps:\n{apps}  - id: plain\n    name: Plain\n    url: https://p.example/\n")
    holder = RegistryHolder(path)
    holder.reload_if_changed()
    return holder


def test_two_workers_check_each_app_once_and_agree(
    database_url: str, site: Site, tmp_path: Path
) -> None:
    urls = {"up": site.url("ok"), "broken": site.url("fail"), "stuck": site.url("hang")}
    holder = _holder(tmp_path, urls)
    metrics = [Metrics(), Metrics()]
    engines = _engines(database_url, 2)
    boards = [
        Board(e, holder, m.app_up, verify=site.trust, total=0.5)
        for e, m in zip(engines, metrics, strict=True)
    ]

    async def round_() -> list[list[str]]:
        checked = await asyncio.gather(*(b.check_due() for b in boards))
        await asyncio.gather(*(b.refresh() for b in boards))
        return checked

    checked = asyncio.run(round_())
    assert sorted(checked[0] + checked[1]) == sorted(urls)
    assert [site.hits[u.removeprefix(site.base)] for u in urls.values()] == [1, 1, 1]
    for board, m in zip(boards, metrics, strict=True):  # both read what either found
        assert set(board.down()) == {"broken", "stuck"}
        text = generate_latest(m.registry).decode()
        assert 'launcher_app_up{app="up"} 1.0' in text
        assert 'launcher_app_up{app="broken"} 0.0' in text
        assert 'launcher_app_up{app="stuck"} 0.0' in text
        assert 'app="plain"' not in text
    # a second round in the same minute checks nothing
    assert asyncio.run(round_()) == [[], []]
    assert sum(site.hits[u.removeprefix(site.base)] for u in urls.values()) == 3
    for engine in engines:
        engine.dispose()


# --- what people see ----------------------------------------------------------------------------
def test_the_mark_says_since_when_in_both_languages() -> None:
    holder = RegistryHolder(EXAMPLE_APPS)
    holder.reload_if_changed()
    registry = holder.current
    allowed = {a.id for a in registry.apps}
    from jinja2 import Environment, FileSystemLoader

    from launcher import assets

    env = Environment(loader=FileSystemLoader(assets.TEMPLATES), autoescape=True)
    since = {"rooster": NOW - dt.timedelta(minutes=5)}
    for lang, text in (
        ("en", "May be down for 5 minutes"),
        ("nl", "Mogelijk onbereikbaar, al 5 minuten"),
    ):
        pieces = grid.build(env, registry, lang, NOW.date(), i18n.translator(lang))
        html = grid.join(pieces, allowed, ["rooster"], [], down=since, now=NOW)
        assert html.html.count(text) == 2  # the favourite and the tile in its category
        link = html.html.split('href="/launch/rooster"', 1)[1].split("</a>", 1)[0]
        assert text in link  # inside the link: its name says it
        plain = grid.join(pieces, allowed, ["rooster"], [], now=NOW)
        assert text not in plain.html


def test_the_tile_and_the_admin_page_show_a_failing_check(
    make_portal: MakePortal, tmp_path: Path
) -> None:
    closed = "https://127.0.0.1:9/health"  # the discard port: nothing listens there
    text = EXAMPLE_APPS.read_text(encoding="utf-8")
    assert "  - id: rooster\n" in text
    apps = tmp_path / "apps.yaml"
    apps.write_text(
        text.replace("  - id: rooster\n", f"  - id: rooster\n    status_url: {closed}\n")
    )
    portal = make_portal(apps_file=apps)
    board: Board = portal.app.state.app_status
    assert wait_until(lambda: "rooster" in board.down(), timeout=20)  # the background task

    page = portal.get("/", STAFF, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    tile = page.text.split('id="app-rooster"', 1)[1].split("</li>", 1)[0]
    assert "May be down for" in tile
    others = page.text.split('id="app-rooster"', 1)[0]
    assert "May be down" not in others
    dutch = portal.get("/", STAFF, headers={"Accept-Language": "nl"})
    assert "Mogelijk onbereikbaar, al" in dutch.text

    admin = portal.get("/admin", ADMIN, headers={"Accept-Language": "en"})
    row = admin.text.split('class="check-down"', 1)[1].split("</tr>", 1)[0]
    assert "<code>rooster</code>" in row and closed in row and "may be down" in row
    assert "UTC" in row  # since and last checked
    metrics = generate_latest(portal.context.metrics.registry).decode()
    assert 'launcher_app_up{app="rooster"} 0.0' in metrics
