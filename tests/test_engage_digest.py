"""The weekly digest through a real SMTP server on loopback (aiosmtpd): plain, STARTTLS with
a throw-away certificate and a login, implicit TLS, a server that refuses and one that is not
there; and the opt-in, opt-out and one-click unsubscribe through the portal's routes."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import re
import ssl
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from launcher import db
from launcher.engage import announcements, subscriptions
from launcher.engage.digest import iso_week, send_digest
from launcher.errors import ConfigError
from launcher.registry import Registry, parse_registry
from launcher.settings import Settings
from tests.conftest import free_port
from tests.helpers import BASE, bare_portal, make_user, post
from tests.web import csrf_of

NOW = dt.datetime(2026, 5, 20, 9, tzinfo=dt.UTC)  # a Wednesday, ISO week 2026-W21
REGISTRY = """
portal: {title: Zorggroep Noord, default_language: en, timezone: UTC}
apps:
  - {id: teams, name: Teams, url: "https://teams.example/"}
  - id: roster
    name: Roster
    url: https://roster.example/
    groups: [staff]
    new_until: 2026-06-30
    description: {en: Plan your shifts, nl: Plan je diensten}
  - {id: ehr, name: EHR, url: "https://ehr.example/", groups: [clinicians], new_until: 2026-06-30}
  - {id: old, name: Old, url: "https://old.example/", new_until: 2026-05-01}
  - {id: secret, name: Secret, url: "https://s.example/", hidden: true, new_until: 2026-06-30}
"""
ANNE = make_user("anne", "staff", email="anne@zorg.example")
BRAM = make_user("bram", "staff", "clinicians", email="bram@zorg.example")
CARL = make_user("carl", "managers", email="carl@zorg.example")  # nothing new for managers
XSS = "<b>bold</b> & <script>x()</script>"


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and refuses some recipients."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse = refuse
        self.messages: list[EmailMessage] = []
        self.logins: list[bytes] = []

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret p@ss"
        if ok:
            self.logins.append(data.login)
        return AuthResult(success=ok)


@pytest.fixture
def cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A throw-away certificate for 127.0.0.1 that the client trusts (through SSL_CERT_FILE,
    as an operator would point it at a private CA); returns the server's TLS context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def _serve(inbox: Inbox, **kwargs: Any) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def serve() -> Iterator[Callable[..., Controller]]:
    started: list[Controller] = []

    def start(inbox: Inbox, **kwargs: Any) -> Controller:
        started.append(_serve(inbox, **kwargs))
        return started[-1]

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def registry() -> Registry:
    return parse_registry(REGISTRY)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    for who in (ANNE, BRAM, CARL):
        subscriptions.subscribe(engine, who, "en")
    news = {"starts": "2026-05-18", "ends": "2026-05-24", "link": ""}
    for title, groups in ((f"Staff party {XSS}", "staff"), ("Ward news", "clinicians")):
        draft = announcements.parse({**news, "title": title, "body": "Body", "groups": groups})
        announcements.create(engine, draft, "uid-editor")
    yield engine
    engine.dispose()


def _settings(make_settings: Callable[..., Settings], url: str, database_url: str) -> Settings:
    return make_settings(database_url=database_url, smtp_url=url, mail_from="portal@zorg.example")


def _weeks(engine: sa.Engine) -> dict[str, str | None]:
    t = subscriptions.T_SUBSCRIBER
    with engine.connect() as conn:
        return {email: week for email, week in conn.execute(sa.select(t.c.email, t.c.last_week))}


def _links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", text)


def test_one_mail_per_person_with_their_news_text_and_html_and_never_twice_a_week(
    engine: sa.Engine,
    registry: Registry,
    serve: Callable[..., Controller],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    inbox = Inbox()
    server = serve(inbox)
    settings = _settings(make_settings, f"smtp://127.0.0.1:{server.port}", database_url)

    report = send_digest(engine, settings, registry, now=NOW)
    assert (report.week, report.sent, report.failed, report.nothing_new) == ("2026-W21", 2, [], 1)
    by_to = {m["To"]: m for m in inbox.messages}
    assert sorted(by_to) == ["anne@zorg.example", "bram@zorg.example"]
    assert _weeks(engine) == {
        "anne@zorg.example": "2026-W21",
        "bram@zorg.example": "2026-W21",
        "carl@zorg.example": None,
    }

    anne, bram = by_to["anne@zorg.example"], by_to["bram@zorg.example"]
    assert anne["From"] == "portal@zorg.example"
    assert anne.get_content_type() == "multipart/alternative"
    text = anne.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = anne.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Staff party" in text and "Ward news" not in text  # her groups only
    assert "Roster" in text and "EHR" not in text and "Old" not in text and "Secret" not in text
    assert f"{BASE}/launch/roster?source=digest" in text and page
    assert XSS in text  # plain text is plain
    assert "<script>" not in page and "&lt;script&gt;x()&lt;/script&gt;" in page
    bram_text = bram.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Ward news" in bram_text and f"{BASE}/launch/ehr?source=digest" in bram_text
    for message in (anne, bram):
        for part in ("plain", "html"):
            body = message.get_body((part,)).get_content()  # type: ignore[union-attr]
            links = _links(body)
            assert links and all(link.startswith(f"{BASE}/") for link in links), links

    # RFC 8058 one-click unsubscribe, with a token that names this person only
    unsubscribe = anne["List-Unsubscribe"]
    assert re.fullmatch(rf"<{re.escape(BASE)}/unsubscribe/[\w.-]+>", unsubscribe)
    assert anne["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = unsubscribe.strip("<>").rsplit("/", 1)[1]
    assert subscriptions.user_of(settings.secret(), token) == ANNE.user_id
    assert unsubscribe != bram["List-Unsubscribe"]

    again = send_digest(engine, settings, registry, now=NOW + dt.timedelta(days=4))  # Sunday
    assert (again.sent, again.already_sent, len(inbox.messages)) == (0, 2, 2)
    next_week = send_digest(engine, settings, registry, now=NOW + dt.timedelta(days=5))
    assert next_week.week == "2026-W22"  # the announcements are over; Roster is still new
    assert next_week.sent == 2 and len(inbox.messages) == 4


def test_dismissed_announcements_stay_out_and_dry_run_sends_and_marks_nothing(
    engine: sa.Engine,
    registry: Registry,
    serve: Callable[..., Controller],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    inbox = Inbox()
    settings = _settings(make_settings, f"smtp://127.0.0.1:{serve(inbox).port}", database_url)
    (party,) = [a.id for a in announcements.for_user(engine, "x", ("staff",), "en", NOW.date())]
    announcements.dismiss(engine, party, ANNE.user_id, ANNE.groups)

    dry = send_digest(engine, settings, registry, dry_run=True, now=NOW)
    assert dry.dry_run and dry.sent == 0 and inbox.messages == []
    assert sorted(dry.would_send) == [
        "a…@zorg.example: 0 announcement(s), 1 new app(s)",
        "b…@zorg.example: 2 announcement(s), 2 new app(s)",
    ]
    assert "would send 2" in dry.lines()[0]
    assert set(_weeks(engine).values()) == {None}

    send_digest(engine, settings, registry, now=NOW)
    anne = next(m for m in inbox.messages if m["To"] == "anne@zorg.example")
    assert "Staff party" not in anne.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_starttls_with_a_login(
    engine: sa.Engine,
    registry: Registry,
    serve: Callable[..., Controller],
    cert: ssl.SSLContext,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    inbox = Inbox()
    server = serve(
        inbox,
        tls_context=cert,
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_required=True,
    )
    url = f"smtp://digest%40zorg.example:s3cret%20p%40ss@127.0.0.1:{server.port}"
    report = send_digest(engine, _settings(make_settings, url, database_url), registry, now=NOW)
    assert (report.sent, report.failed) == (2, [])
    assert inbox.logins == [b"digest@zorg.example"]  # one connection, one login, for the run

    wrong = url.replace("s3cret", "wrong")
    send_digest(engine, _settings(make_settings, wrong, database_url), registry, now=NOW)
    assert len(inbox.messages) == 2


def test_implicit_tls(
    engine: sa.Engine,
    registry: Registry,
    serve: Callable[..., Controller],
    cert: ssl.SSLContext,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    inbox = Inbox()
    server = serve(inbox, ssl_context=cert)
    url = f"smtps://127.0.0.1:{server.port}"
    report = send_digest(engine, _settings(make_settings, url, database_url), registry, now=NOW)
    assert (report.sent, len(inbox.messages)) == (2, 2)


def test_an_untrusted_certificate_or_a_password_in_clear_sends_nothing(
    engine: sa.Engine,
    registry: Registry,
    serve: Callable[..., Controller],
    cert: ssl.SSLContext,
    make_settings: Callable[..., Settings],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox = Inbox()
    tls = serve(inbox, tls_context=cert, require_starttls=True)
    monkeypatch.delenv("SSL_CERT_FILE")  # the throw-away certificate is trusted no more
    untrusted = f"smtp://127.0.0.1:{tls.port}"
    report = send_digest(
        engine, _settings(make_settings, untrusted, database_url), registry, now=NOW
    )
    assert report.sent == 0 and len(report.failed) == 2
    assert "certificate" in report.failed[0].lower()

    clear = f"smtp://user:s3cret@127.0.0.1:{serve(inbox).port}"  # offers no STARTTLS
    report = send_digest(engine, _settings(make_settings, clear, database_url), registry, now=NOW)
    assert report.sent == 0 and "not sent in clear" in report.failed[0]
    assert inbox.messages == [] and set(_weeks(engine).values()) == {None}


def test_a_refused_recipient_fails_alone_and_is_retried_next_run(
    engine: sa.Engine,
    registry: Registry,
    serve: Callable[..., Controller],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    refusing = Inbox(refuse=("anne@zorg.example",))
    url = f"smtp://127.0.0.1:{serve(refusing).port}"
    settings = _settings(make_settings, url, database_url)
    report = send_digest(engine, settings, registry, now=NOW)
    assert report.sent == 1 and [m["To"] for m in refusing.messages] == ["bram@zorg.example"]
    assert report.failed == ["a…@zorg.example: refused by the mail server: recipient 550"]
    assert any("retried next run" in line for line in report.lines())
    assert _weeks(engine)["anne@zorg.example"] is None

    accepting = Inbox()
    url = f"smtp://127.0.0.1:{serve(accepting).port}"
    retry = send_digest(engine, _settings(make_settings, url, database_url), registry, now=NOW)
    assert (retry.sent, retry.already_sent) == (1, 1)
    assert [m["To"] for m in accepting.messages] == ["anne@zorg.example"]


def test_an_unreachable_server_fails_every_mail_cleanly(
    engine: sa.Engine, registry: Registry, make_settings: Callable[..., Settings], database_url: str
) -> None:
    url = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    report = send_digest(engine, _settings(make_settings, url, database_url), registry, now=NOW)
    assert report.sent == 0 and len(report.failed) == 2
    assert all("cannot use the mail server" in line for line in report.failed)
    assert set(_weeks(engine).values()) == {None}


def test_sending_needs_the_smtp_settings(
    engine: sa.Engine, registry: Registry, make_settings: Callable[..., Settings], database_url: str
) -> None:
    with pytest.raises(ConfigError, match="LAUNCHER_SMTP_URL"):
        send_digest(engine, make_settings(database_url=database_url), registry, now=NOW)
    assert iso_week(dt.date(2027, 1, 1)) == "2026-W53"


# --- opting in and out, unsubscribing --------------------------------------------------------
def test_opt_in_stores_the_address_only_while_opted_in(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    nomail = make_user("nomail", "staff", email="")
    with bare_portal(settings) as p:
        anne, other = p.browser(ANNE), p.browser(nomail)
        page = anne.get("/settings", headers={"Accept-Language": "en"})
        assert page.status_code == 200 and 'value="weekly"' in page.text
        token = csrf_of(page.text)
        assert post(anne, "/settings/digest", {"digest": "weekly"}, "forged").status_code == 403
        assert subscriptions.address(p.context.engine, ANNE.user_id) is None
        saved = post(anne, "/settings/digest", {"digest": "weekly"}, token)
        assert saved.status_code == 303 and saved.headers["location"] == "/settings?saved=1"
        assert subscriptions.address(p.context.engine, ANNE.user_id) == "anne@zorg.example"
        assert "anne@zorg.example" in anne.get("/settings").text
        assert post(anne, "/settings/digest", {"digest": "daily"}, token).status_code == 400
        post(anne, "/settings/digest", {"digest": "off"}, token)
        with p.context.engine.connect() as conn:
            rows = conn.execute(sa.select(subscriptions.T_SUBSCRIBER)).all()
        assert rows == []  # the address is gone with the opt-out

        refused = post(
            other, "/settings/digest", {"digest": "weekly"}, csrf_of(other.get("/").text)
        )
        assert refused.status_code == 400 and "e-mail address" in refused.text
        assert p.browser().get("/settings").headers["location"].startswith("/login")


def test_one_click_unsubscribe_without_a_cookie(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    with bare_portal(settings) as p:
        subscriptions.subscribe(p.context.engine, ANNE, "en")
        link = f"/unsubscribe/{subscriptions.token_for(settings.secret(), ANNE.user_id)}"
        anonymous = p.browser()

        confirm = anonymous.get(link)  # a link scanner's GET changes nothing
        assert confirm.status_code == 200
        assert re.search(rf'<form method="post" action="{re.escape(link)}">', confirm.text)
        assert subscriptions.address(p.context.engine, ANNE.user_id) == "anne@zorg.example"

        # the mail provider's POST: no cookie, no CSRF token, from elsewhere; a 200, no redirect
        done = anonymous.post(
            link,
            content=b"List-Unsubscribe=One-Click",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "https://mail.provider.example",
            },
        )
        assert done.status_code == 200 and "set-cookie" not in done.headers
        assert subscriptions.address(p.context.engine, ANNE.user_id) is None
        assert anonymous.post(link).status_code == 200  # again: still fine

        forged = subscriptions.token_for("another-secret-key-entirely-0123456789", ANNE.user_id)
        assert anonymous.post(f"/unsubscribe/{forged}").status_code == 404
        assert anonymous.get(f"/unsubscribe/{link[-10:]}").status_code == 404


def test_the_send_digest_command(
    serve: Callable[..., Controller],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``launcher send-digest`` as cron runs it: settings from the environment, a summary per
    run, exit 1 while a mail failed (so that cron reports it)."""
    from launcher.cli import main

    inbox = Inbox()
    server = serve(inbox)
    apps = tmp_path / "apps.yaml"
    apps.write_text(
        "apps:\n  - {id: roster, name: Roster, url: 'https://roster.example/',"
        " new_until: 2999-12-31}\n"
    )
    url = f"sqlite:///{tmp_path}/launcher.db"
    for name, value in {
        "SECRET_KEY": "cli-digest-secret-key-that-is-long-enough-012",
        "DATABASE_URL": url,
        "APPS_FILE": str(apps),
        "SMTP_URL": f"smtp://127.0.0.1:{server.port}",
        "MAIL_FROM": "portal@zorg.example",
    }.items():
        monkeypatch.setenv(f"LAUNCHER_{name}", value)
    engine = db.make_engine(url)
    db.upgrade(engine)
    subscriptions.subscribe(engine, ANNE, "en")
    engine.dispose()

    assert main(["send-digest", "--dry-run"]) == 0
    assert "a…@zorg.example: 0 announcement(s), 1 new app(s)" in capsys.readouterr().out
    assert inbox.messages == []
    assert main(["send-digest"]) == 0
    assert [m["To"] for m in inbox.messages] == ["anne@zorg.example"]
    assert main(["send-digest"]) == 0  # the same week: nothing twice
    assert len(inbox.messages) == 1
    monkeypatch.setenv("LAUNCHER_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nobody there
    subscriptions.subscribe(db.make_engine(url), BRAM, "en")
    assert main(["send-digest"]) == 1  # the server is unreachable: reported, exit 1
    assert "failed" in capsys.readouterr().out
