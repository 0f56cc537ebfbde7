"""The development provider's HTML: the "Sign in as…" picker and its plain message pages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from starlette.responses import HTMLResponse

from launcher.demo.oauth import NO_STORE, origin
from launcher.demo.users import DemoUser

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "ul{list-style:none;padding:0}li{margin:.5rem 0}"
    "button[name=user]{display:block;width:100%;text-align:left;padding:.6rem 1rem;"
    "font:inherit;cursor:pointer}button span{display:block;color:#555;font-size:.9em}"
)


def picker(
    issuer: str,
    client_id: str,
    redirect_uri: str,
    fields: Mapping[str, str],
    users: Iterable[DemoUser],
) -> HTMLResponse:
    """The form that asks who you are; ``fields`` carry the authorization request along."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )
    buttons = "".join(
        f'<li><button type="submit" name="user" value="{escape(u.sub)}">'
        f"<strong>{escape(u.name)}</strong>"
        f"<span>Department: {escape(u.department)}</span>"
        f"<span>Groups: {escape(', '.join(u.groups))}</span></button></li>"
        for u in users
    )
    body = (
        "<p>Development identity provider, for demos and tests only. Choose who you are "
        f"when signing in to <strong>{escape(client_id)}</strong>.</p>"
        f'<form method="post" action="{escape(issuer)}/authorize">{hidden}'
        f'<ul>{buttons}</ul><button type="submit" name="cancel" value="1">Cancel</button>'
        "</form>"
    )
    # form-action also governs the redirect that follows the POST (browsers enforce it
    # there), so the application's origin must be allowed too.
    return page("Sign in as…", body, form_action=f"'self' {origin(redirect_uri)}")


def page(
    title: str, body: str, status_code: int = 200, *, form_action: str = "'none'"
) -> HTMLResponse:
    """An HTML page. ``body`` is markup: callers escape every value they put into it."""
    csp = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · development sign-in</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {
        **NO_STORE,
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        # not no-referrer: with it, browsers send "Origin: null" on the picker's POST,
        # which the cross-site guard would refuse
        "referrer-policy": "same-origin",
    }
    return HTMLResponse(html, status_code, headers=headers)


def refused(message: str, status_code: int = 400) -> HTMLResponse:
    """The page for a request that cannot be answered with a redirect."""
    return page("Sign-in request refused", f"<p>{escape(message)}</p>", status_code)
