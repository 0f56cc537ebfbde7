"""The authorization request of the development provider: who may ask, and what they ask.

An unknown client or return address is answered with a page (:class:`BadClient`), never a
redirect; any other problem goes back to the validated ``redirect_uri`` (:class:`RedirectError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from launcher.demo.oauth import PKCE

PARAMS = (  # each may be sent once only
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)
SCOPES = ("openid", "profile", "email")


@dataclass(frozen=True)
class DevClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthRequest:
    client: DevClient
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str

    def fields(self) -> dict[str, str]:
        """The request as the hidden fields of the picker form."""
        return {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }


class BadClient(Exception):
    """Unknown client or redirect_uri: answered with a page, never a redirect (RFC 6749 4.1.2.1)."""


class RedirectError(Exception):
    """An authorization error that is safe to send back to the (validated) redirect_uri."""

    def __init__(self, redirect_uri: str, state: str, error: str, description: str) -> None:
        super().__init__(error)
        self.redirect_uri, self.state = redirect_uri, state
        self.error, self.description = error, description


def parse(
    clients: Mapping[str, DevClient], values: Mapping[str, str], bad: set[str]
) -> AuthRequest:
    """The authorization request in ``values``; ``bad`` names the parameters sent twice.

    Raises :class:`BadClient` or :class:`RedirectError`.
    """
    client = clients.get(values.get("client_id", ""))
    if client is None or "client_id" in bad:
        raise BadClient("The application that sent you here (client_id) is not registered.")
    redirect_uri = values.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris or "redirect_uri" in bad:
        raise BadClient("The return address (redirect_uri) is not registered for this application.")
    state = "" if "state" in bad else values.get("state", "")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, state, error, description)

    repeated = sorted(bad.intersection(PARAMS))
    if repeated:
        raise fail("invalid_request", f"parameter {repeated[0]} was sent more than once")
    if values.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    scopes = values.get("scope", "").split()
    if "openid" not in scopes:
        raise fail("invalid_scope", "scope must include openid")
    if not state:
        raise fail("invalid_request", "state is required")
    nonce = values.get("nonce", "")
    if not nonce:
        raise fail("invalid_request", "nonce is required")
    challenge = values.get("code_challenge", "")
    if values.get("code_challenge_method") != "S256" or not PKCE.fullmatch(challenge):
        raise fail("invalid_request", "PKCE is required: code_challenge with method S256")
    granted = " ".join(s for s in SCOPES if s in scopes)  # unknown scopes are ignored
    return AuthRequest(client, redirect_uri, granted, state, nonce, challenge)
