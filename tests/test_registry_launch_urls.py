"""Launch URLs (launcher/registry/launch_urls.py): placeholders, third-party login, the cache."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from launcher.auth.user import User
from launcher.registry import App, LaunchTargets, launch_url, parse_registry

ISSUER = "https://login.example/realms/zorg"


def make_app(url: str, initiate: str | None = None) -> App:
    return App.model_validate({"id": "a", "name": "A", "url": url, "initiate_login_uri": initiate})


VALUES = {
    "email": "anne+test@zorg.example",
    "name": "Zoë de Vries/Jansen & co=?#",
    "sub": "abc/def",
    "upn": "anne@corp.example",
    "domain": "zorg.example",
}


def test_placeholders_are_percent_encoded_completely() -> None:
    app = make_app("https://x.example/?hint={email}&n={name}&s={sub}")
    assert launch_url(app, VALUES, "https://login.example") == (
        "https://x.example/?hint=anne%2Btest%40zorg.example"
        "&n=Zo%C3%AB%20de%20Vries%2FJansen%20%26%20co%3D%3F%23&s=abc%2Fdef"
    )


def test_a_missing_value_fills_in_empty() -> None:
    app = make_app("https://x.example/?u={upn}")
    assert launch_url(app, {"email": "a@b.example"}, "https://login.example") == (
        "https://x.example/?u="
    )


def test_initiate_login_uri_sends_iss_login_hint_and_target() -> None:
    app = make_app(
        "https://rooster.example/start?u={email}",
        initiate="https://rooster.example/oidc/login?tenant=zgn",
    )
    issuer = "https://login.example/realms/zorg"
    url = launch_url(app, VALUES, issuer)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "rooster.example", "/oidc/login")
    # nothing left unescaped in the query: the target's own ? & = and @ + are encoded
    assert parts.query == (
        "tenant=zgn&iss=https%3A%2F%2Flogin.example%2Frealms%2Fzorg"
        "&target_link_uri=https%3A%2F%2Frooster.example%2Fstart%3Fu%3Danne%252Btest%2540zorg.example"
        "&login_hint=anne%2Btest%40zorg.example"
    )
    query = parse_qs(parts.query)
    assert query["iss"] == [issuer]
    assert query["login_hint"] == ["anne+test@zorg.example"]
    assert query["target_link_uri"] == [launch_url(make_app(app.url), VALUES, issuer)]


def test_initiate_login_hint_falls_back_to_upn_then_to_nothing() -> None:
    app = make_app("https://r.example/", initiate="https://r.example/login")
    with_upn = parse_qs(urlsplit(launch_url(app, {"upn": "u@corp.example"}, "https://i")).query)
    assert with_upn["login_hint"] == ["u@corp.example"]
    bare = parse_qs(urlsplit(launch_url(app, {"sub": "s"}, "https://i")).query)
    assert "login_hint" not in bare
    assert bare["target_link_uri"] == ["https://r.example/"]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        pytest.param("a+b", "a%2Bb", id="plus"),
        pytest.param("a@b", "a%40b", id="at"),
        pytest.param("a b", "a%20b", id="space"),
        pytest.param("a/b", "a%2Fb", id="slash"),
        pytest.param("a&b=c", "a%26b%3Dc", id="query syntax"),
        pytest.param("a#b", "a%23b", id="fragment"),
        pytest.param("a%40b", "a%2540b", id="percent"),
        pytest.param("a{email}", "a%7Bemail%7D", id="braces are not filled twice"),
    ],
)
def test_each_placeholder_value_is_percent_encoded(value: str, encoded: str) -> None:
    app = make_app("https://x.example/p/{sub}?u={email}")
    url = launch_url(app, {"sub": value, "email": value}, ISSUER)
    assert url == f"https://x.example/p/{encoded}?u={encoded}"


def test_a_url_without_placeholders_is_returned_as_it_is() -> None:
    app = make_app("https://x.example/{{literal}}?a=1")
    assert launch_url(app, VALUES, ISSUER) == "https://x.example/{literal}?a=1"


def test_initiate_login_uri_without_a_query_of_its_own() -> None:
    app = make_app("https://r.example/?u={upn}", initiate="https://r.example/login")
    url = launch_url(app, {"email": "a+b@c.example", "upn": "u@c.example"}, ISSUER)
    assert url == (
        "https://r.example/login?iss=https%3A%2F%2Flogin.example%2Frealms%2Fzorg"
        "&target_link_uri=https%3A%2F%2Fr.example%2F%3Fu%3Du%2540c.example"
        "&login_hint=a%2Bb%40c.example"
    )


# --- LaunchTargets ----------------------------------------------------------------------

REGISTRY = """\
apps:
  - {id: mail, name: Mail, url: 'https://mail.example/{sub}?u={email}&n={name}'}
  - {id: plain, name: Plain, url: 'https://plain.example/'}
"""


def _user(**changes: str) -> User:
    values = {"user_id": "u1", "sub": "s1", "name": "Anne de Vries", "email": "a+b@zorg.example"}
    return User(**{**values, **changes})  # type: ignore[arg-type]


def test_launch_targets_are_the_launch_url_quoted_for_the_location_header() -> None:
    registry = parse_registry(REGISTRY)
    app = registry.app("mail")
    assert app is not None
    target = LaunchTargets().get(registry, app, _user(), ISSUER)
    url = launch_url(app, _user().placeholders(), ISSUER)
    assert target == url.encode("latin-1")  # already fully escaped: quoting changes nothing
    assert unquote(target.decode()) == "https://mail.example/s1?u=a+b@zorg.example&n=Anne de Vries"


def test_launch_targets_never_serve_one_users_url_to_another() -> None:
    registry = parse_registry(REGISTRY)
    app = registry.app("mail")
    assert app is not None
    targets = LaunchTargets()
    anne = targets.get(registry, app, _user(), ISSUER)
    assert targets.get(registry, app, _user(), ISSUER) is anne  # cached
    for other in (_user(sub="s2"), _user(name="Bram"), _user(email="b@zorg.example")):
        assert targets.get(registry, app, other, ISSUER) != anne
    plain = registry.app("plain")
    assert plain is not None
    assert targets.get(registry, plain, _user(), ISSUER) == b"https://plain.example/"


def test_launch_targets_start_afresh_with_a_new_registry_and_stay_bounded() -> None:
    old = parse_registry(REGISTRY)
    new = parse_registry(REGISTRY.replace("mail.example", "post.example"))
    targets = LaunchTargets()
    old_app, new_app = old.app("mail"), new.app("mail")
    assert old_app is not None and new_app is not None
    assert b"mail.example" in targets.get(old, old_app, _user(), ISSUER)
    assert b"post.example" in targets.get(new, new_app, _user(), ISSUER)

    for i in range(LaunchTargets.MAX + 10):
        targets.get(new, new_app, _user(sub=f"s{i}"), ISSUER)
        assert len(targets._cache) <= LaunchTargets.MAX
