"""The one SMTP connection of a digest run (``LAUNCHER_SMTP_URL``).

``smtp://[user:pass@]host[:port]`` upgrades with STARTTLS when the server offers it (and
refuses to send a password over a connection that stays in clear); ``smtps://`` is TLS from
the first byte. Certificates are verified against the system's trust store (``SSL_CERT_FILE``
points elsewhere). Every network step has a bounded time-out, so a server that stops answering
ends the run instead of hanging a cron job.

Failures come in two kinds, because a run treats them differently: :class:`Refused` is about
one mail (a rejected recipient, a rejected message) and the run goes on with the next;
:class:`Unavailable` means the connection is gone and the remaining mails wait for next run.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import Message
from types import TracebackType
from urllib.parse import unquote, urlsplit

TIMEOUT = 15.0  # seconds for each connect, read and write


class MailError(Exception):
    """A mail was not accepted; ``str()`` says why in plain words."""


class Refused(MailError):
    """The server refused this one mail; the connection can carry the next."""


class Unavailable(MailError):
    """The server cannot be reached, or the connection broke: nothing more goes out this run."""


class Mailer:
    """``with Mailer(url) as m: m.send(message)`` -- connects on entering."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise Unavailable("LAUNCHER_SMTP_URL must be smtp://… or smtps://…")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        context = ssl.create_default_context()
        try:
            if self.tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self._smtp = smtp
            smtp.ehlo()
            if not self.tls and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
                self.tls = True
            if self.user is not None:
                if not self.tls:
                    raise Unavailable(
                        f"{self.host}:{self.port} offers no STARTTLS: "
                        "the password is not sent in clear"
                    )
                smtp.login(self.user, self.password)
        except Unavailable:
            self.close()
            raise
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            self.close()
            raise Unavailable(f"cannot use the mail server {self.host}:{self.port}: {exc}") from exc
        return self

    def send(self, message: Message) -> None:
        """Hand one message over; it counts as sent once this returns."""
        if self._smtp is None:
            raise Unavailable("not connected to the mail server")
        try:
            refused = self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Refused(f"refused by the mail server: {_reason(exc)}") from exc
        except smtplib.SMTPResponseException as exc:  # sender or message refused
            if exc.smtp_code == 421:  # "service not available, closing the channel"
                self.close()
                raise Unavailable(f"the mail server closed the connection: {exc}") from exc
            raise Refused(f"refused by the mail server: {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise Unavailable(f"the mail server connection broke: {exc}") from exc
        if refused:  # some recipients refused (we send to one: only a server that lies)
            raise Refused(f"refused by the mail server: {sorted(refused.values())[0][0]}")

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _reason(exc: smtplib.SMTPRecipientsRefused) -> str:
    codes = sorted({code for code, _ in exc.recipients.values()})
    return "recipient " + "/".join(str(c) for c in codes)
