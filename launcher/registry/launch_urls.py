"""Where a launch goes: an app's URL with the user's placeholders filled in, and a cache of them."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from launcher.auth.user import User
from launcher.registry.schema import PLACEHOLDERS, App, Registry


def launch_url(app: App, values: Mapping[str, str], issuer: str) -> str:
    """Where a launch of ``app`` goes for a user with these placeholder values.

    Each value is percent-encoded with nothing left unescaped (``+`` -> ``%2B``, ``@`` ->
    ``%40``); a missing value fills in as an empty string. With ``initiate_login_uri`` the
    launch is an OIDC third-party-initiated login: the app receives our issuer, a login hint
    and the target, and signs the user in without asking for a second login.
    """
    used = [p for p in PLACEHOLDERS if "{" + p + "}" in app.url]  # quote() is the costly part
    target = app.url.format(**{p: quote(values.get(p) or "", safe="") for p in used})
    if app.initiate_login_uri is None:
        return target
    params = {"iss": issuer, "target_link_uri": target}
    hint = values.get("email") or values.get("upn")
    if hint:
        params["login_hint"] = hint
    parts = urlsplit(app.initiate_login_uri)
    query = "&".join(q for q in (parts.query, urlencode(params, quote_via=quote, safe="")) if q)
    return urlunsplit(parts._replace(query=query))


class LaunchTargets:
    """Launch URLs already built, per registry, app and user: a click costs a dict lookup.

    Values are the ``Location`` header, ready to send (URL-quoted as Starlette's
    RedirectResponse would). A new registry starts a new cache; the size is bounded.
    """

    MAX = 4096

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._cache: dict[tuple[str, str, str, str, str | None, str | None], bytes] = {}

    def get(self, registry: Registry, app: App, user: User, issuer: str) -> bytes:
        if registry is not self._registry:
            self._registry, self._cache = registry, {}
        key = (app.id, issuer, user.sub, user.name, user.email, user.upn)
        target = self._cache.get(key)
        if target is None:
            url = launch_url(app, user.placeholders(), issuer)
            target = quote(url, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1")
            if len(self._cache) >= self.MAX:
                self._cache.clear()
            self._cache[key] = target
        return target
