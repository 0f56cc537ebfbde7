"""The weekly digest: one mail per opted-in person with this week's announcements and new apps
for their groups (``launcher send-digest``, from cron or a Kubernetes CronJob).

Every link goes into the portal, never straight to an app or an outside page: a new app is
``{base}/launch/{id}?source=digest`` (a launch like any other, counted with its own source),
an announcement is its place on the grid. Each mail has a text and an HTML part and carries
``List-Unsubscribe`` with a one-click link (RFC 8058) that works without a session.

Nothing goes out twice in one ISO week: a person's row records the week of the last mail the
server *accepted*, written right after that acceptance. A mail the server refuses, or that
never reaches a server, leaves the row as it was -- reported, and tried again next run. Run it
as often as you like: a second run in the same week only retries what failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
import sqlalchemy as sa

from launcher import assets, i18n
from launcher.engage import announcements, subscriptions
from launcher.engage.mail import Mailer, MailError, Unavailable
from launcher.errors import ConfigError
from launcher.registry import App, Registry
from launcher.settings import Settings

T_SUBSCRIBER = subscriptions.T_SUBSCRIBER
T_SEEN = announcements.T_SEEN
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable in a raw mail, unlike base64; lines wrapped at 76
# No folding of our own headers (RFC 5322 allows 998 characters): a folded List-Unsubscribe
# would start with a space after unfolding. The subject comes encoded and folded already.
_POLICY = compat32.clone(max_line_length=998)


@dataclass
class DigestReport:
    """What a run did; ``lines()`` is what ``launcher send-digest`` prints."""

    week: str
    dry_run: bool
    sent: int = 0
    nothing_new: int = 0  # opted in, but nothing to tell them this week
    already_sent: int = 0  # had this week's mail already
    failed: list[str] = field(default_factory=list)  # "a…@example.org: why"
    would_send: list[str] = field(default_factory=list)  # --dry-run: "a…@example.org: what"

    def lines(self) -> list[str]:
        verb = "would send" if self.dry_run else "sent"
        count = len(self.would_send) if self.dry_run else self.sent
        head = (
            f"digest {self.week}: {verb} {count}, failed {len(self.failed)}, nothing new for "
            f"{self.nothing_new}, already sent {self.already_sent}"
        )
        return (
            [head]
            + [f"  would send to {line}" for line in self.would_send]
            + [f"  failed: {line} (retried next run)" for line in self.failed]
        )


@dataclass(frozen=True)
class _Reader:
    user_id: str
    email: str
    groups: tuple[str, ...]
    language: str


def iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def masked(email: str) -> str:
    """An address as reports show it: enough to find it, not enough to copy it."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}…@{domain}"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(assets.TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _readers(conn: sa.Connection, week: str) -> tuple[list[_Reader], int]:
    s = T_SUBSCRIBER.c
    rows = conn.execute(sa.select(T_SUBSCRIBER).order_by(s.user_id)).all()
    due = [r for r in rows if r.last_week != week]
    readers = [
        _Reader(r.user_id, r.email, tuple(g for g in r.groups.split(",") if g), r.language)
        for r in due
    ]
    return readers, len(rows) - len(due)


def _dismissed(conn: sa.Connection, ids: list[int]) -> set[tuple[int, str]]:
    if not ids:
        return set()
    rows = conn.execute(
        sa.select(T_SEEN.c.announcement_id, T_SEEN.c.user_id).where(
            T_SEEN.c.dismissed.is_(True), T_SEEN.c.announcement_id.in_(ids)
        )
    )
    return {(int(a), u) for a, u in rows}


def compose(
    env: jinja2.Environment,
    settings: Settings,
    registry: Registry,
    reader: _Reader,
    news: list[announcements.Item],
    apps: list[App],
    now: dt.datetime,
) -> Message:
    """One person's mail: text and HTML parts, unsubscribe headers.

    Built with the classic ``email.mime`` classes: the modern ``EmailMessage`` API parses
    every header it is given, which made composing most of a run's time (bench/README.md)."""
    lang = reader.language or registry.portal.default_language
    base = settings.base_url
    unsubscribe = f"{base}/unsubscribe/{subscriptions.token_for(settings.secret(), reader.user_id)}"
    context: dict[str, Any] = {
        "t": i18n.translator(lang),
        "lang": lang,
        "title": registry.portal.title,
        "base": base,
        "news": news,
        "apps": [(app, f"{base}/launch/{app.id}?source=digest") for app in apps],
        "unsubscribe": unsubscribe,
    }
    message = MIMEMultipart("alternative", policy=_POLICY)
    subject = f"{context['t']('Your week in the portal')}: {registry.portal.title}"
    message["Subject"] = subject if subject.isascii() else Header(subject, _UTF8).encode()
    message["From"] = settings.mail_from or ""
    message["To"] = reader.email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=urlsplit(base).hostname or "launcher")
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office replies, please
    message.attach(_text_part(env.get_template("digest_mail.txt").render(context), "plain"))
    message.attach(_text_part(env.get_template("digest_mail.html").render(context), "html"))
    return message


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, policy=_POLICY)
    part.set_payload(text, _UTF8)  # sets charset="utf-8" and quoted-printable
    return part


def send_digest(
    engine: sa.Engine,
    settings: Settings,
    registry: Registry,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> DigestReport:
    """Send this week's digest to everyone due; a failed mail never stops the run."""
    if not dry_run and (settings.smtp_url is None or not settings.mail_from):
        raise ConfigError("the digest needs LAUNCHER_SMTP_URL and LAUNCHER_MAIL_FROM")
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(ZoneInfo(registry.portal.timezone)).date()
    report = DigestReport(week=iso_week(today), dry_run=dry_run)
    with engine.connect() as conn:
        readers, report.already_sent = _readers(conn, report.week)
        current = announcements.current(conn, today)
        dismissed = _dismissed(conn, [a.id for a in current])
    env = _environment()
    outbox: list[tuple[_Reader, Message]] = []
    for reader in readers:
        lang = reader.language or registry.portal.default_language
        news = [
            a
            for a in current
            if a.for_audience(reader.groups)
            and a.in_language(lang)
            and (a.id, reader.user_id) not in dismissed
        ]
        apps = [
            app
            for app in registry.visible_apps(reader.groups)
            if not app.hidden and app.is_new(today)
        ]
        if not news and not apps:
            report.nothing_new += 1
            continue
        if dry_run:
            what = f"{len(news)} announcement(s), {len(apps)} new app(s)"
            report.would_send.append(f"{masked(reader.email)}: {what}")
            continue
        outbox.append((reader, compose(env, settings, registry, reader, news, apps, now)))
    if outbox:
        _deliver(engine, settings, outbox, report)
    return report


def _deliver(
    engine: sa.Engine,
    settings: Settings,
    outbox: list[tuple[_Reader, Message]],
    report: DigestReport,
) -> None:
    assert settings.smtp_url is not None
    pending = iter(outbox)
    try:
        with Mailer(settings.smtp_url.get_secret_value()) as mailer:
            for reader, message in pending:
                try:
                    mailer.send(message)
                except Unavailable:
                    report.failed.append(f"{masked(reader.email)}: the mail server went away")
                    raise
                except MailError as exc:
                    report.failed.append(f"{masked(reader.email)}: {exc}")
                    continue
                _mark_sent(engine, reader.user_id, report.week)
                report.sent += 1
    except Unavailable as exc:
        # the rest of this run's mails wait for the next run, each reported
        report.failed.extend(f"{masked(reader.email)}: {exc}" for reader, _ in pending)


def _mark_sent(engine: sa.Engine, user_id: str, week: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(T_SUBSCRIBER).where(T_SUBSCRIBER.c.user_id == user_id).values(last_week=week)
        )
