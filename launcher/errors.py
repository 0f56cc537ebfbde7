"""One error hierarchy. Each error carries its HTTP status and a message a person can read.

The single handler in :mod:`launcher.views.common` renders these as an HTML page or as JSON;
the CLI turns them into a message on stderr and exit code 1.
"""

from __future__ import annotations


class LauncherError(Exception):
    status = 500
    title = "Something went wrong"
    retry: str | None = None  # a link the error page offers ("Sign in again")

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # detail is for the log only: technical reasons that the user should not see
        self.detail = detail


class ConfigError(LauncherError):
    title = "Configuration error"


class BadRequest(LauncherError):
    status = 400
    title = "Bad request"


class TooManyRequests(LauncherError):
    status = 429
    title = "Too many requests"


class LoginFailed(LauncherError):
    """The provider's answer did not pass validation; no session is made."""

    status = 400
    title = "Sign-in failed"


class NotSignedIn(LauncherError):
    status = 401
    title = "Sign-in required"


class Forbidden(LauncherError):
    status = 403
    title = "Not allowed"


class NotFound(LauncherError):
    status = 404
    title = "Not found"


class CsrfFailed(LauncherError):
    status = 403
    title = "Request refused"


class ProviderUnavailable(LauncherError):
    """The identity provider is unreachable or answered with an error of its own."""

    status = 502
    title = "The sign-in service is not answering"


class RegistryError(LauncherError):
    """The app registry is invalid; ``problems`` lists each with file:line and field."""

    title = "Invalid app registry"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the app registry")
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)
