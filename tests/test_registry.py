"""The app registry: parsing with file:line errors, display order, launches, live reload."""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from launcher.errors import RegistryError
from launcher.registry import (
    App,
    RegistryHolder,
    json_schema,
    launch_url,
    load_registry,
    parse_registry,
)
from tests.conftest import EXAMPLE_APPS

# Line numbers matter below: an extra app line appended to BASE is line 9.
BASE = """\
categories:
  - id: communication
    name: {en: Communication, nl: Communicatie}
apps:
  - id: teams
    name: Microsoft Teams
    url: URL
    category: communication
"""
TEAMS = "apps[0] (id: teams)"


def registry_text(extra: str = "", url: str = "https://teams.microsoft.com/") -> str:
    return BASE.replace("URL", url) + extra


# file:line: field: message -- the field is a dotted path, maybe with the item's id
PROBLEM = re.compile(
    r"(?P<file>[^:]+):(?P<line>[1-9][0-9]*): "
    r"(?P<field>\((top level|YAML|file)\)|[a-z_]+(\[\d+\]( \(id: [^)]*\))?|\.[^.\s:]+)*): "
    r"(?P<message>\S.*)"
)


def problems(text: str, source: str = "apps.yaml") -> list[str]:
    with pytest.raises(RegistryError) as info:
        parse_registry(text, source=source)
    for problem in info.value.problems:
        assert PROBLEM.fullmatch(problem), f"not file:line: field: message: {problem!r}"
    return info.value.problems


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_base_document_is_valid() -> None:
    registry = parse_registry(registry_text())
    assert [app.id for app in registry.apps] == ["teams"]


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        pytest.param("colour: red\n", "apps.yaml:9: colour", "unknown key", id="unknown top key"),
        pytest.param(
            "    colour: red\n", f"apps.yaml:9: {TEAMS}.colour", "unknown key", id="app key"
        ),
        pytest.param(
            "    description: {en: Chat, de: Plaudern}\n",
            f"apps.yaml:9: {TEAMS}.description.de",
            "unknown key",
            id="unknown language",
        ),
        pytest.param(
            "    order: ten\n", f"apps.yaml:9: {TEAMS}.order", "valid integer", id="order text"
        ),
        pytest.param(
            "    order: true\n", f"apps.yaml:9: {TEAMS}.order", "valid integer", id="order bool"
        ),
        pytest.param(
            "    hidden: maybe\n",
            f"apps.yaml:9: {TEAMS}.hidden",
            "valid boolean",
            id="hidden maybe",
        ),
        pytest.param(
            "    hidden: 'yes'\n", f"apps.yaml:9: {TEAMS}.hidden", "valid boolean", id="hidden text"
        ),
        pytest.param(
            "    new_until: soon\n", f"apps.yaml:9: {TEAMS}.new_until", "valid date", id="date text"
        ),
        pytest.param(
            "    new_until: 2026-13-45\n",
            f"apps.yaml:9: {TEAMS}.new_until",
            "month",
            id="impossible date",
        ),
        pytest.param(
            "    groups: []\n", f"apps.yaml:9: {TEAMS}.groups", "omit 'groups'", id="empty groups"
        ),
        pytest.param(
            "    groups: staff\n",
            f"apps.yaml:9: {TEAMS}.groups",
            "expected a list",
            id="groups str",
        ),
        pytest.param(
            "    icon: missing.svg\n",
            f"apps.yaml:9: {TEAMS}.icon",
            "no icon file 'missing.svg'",
            id="icon file missing",
        ),
        pytest.param(
            "    icon: ../../etc/passwd.svg\n",
            f"apps.yaml:9: {TEAMS}.icon",
            "file name like teams.svg",
            id="icon bad name",
        ),
        pytest.param(
            "    icon: http://cdn.example/teams.svg\n",
            f"apps.yaml:9: {TEAMS}.icon",
            "must be https://",
            id="icon http",
        ),
        pytest.param(
            "    initiate_login_uri: http://teams.example/login\n",
            f"apps.yaml:9: {TEAMS}.initiate_login_uri",
            "https://",
            id="initiate_login_uri http",
        ),
        pytest.param(
            "    initiate_login_uri: https://teams.example/login?u={email}\n",
            f"apps.yaml:9: {TEAMS}.initiate_login_uri",
            "no placeholders",
            id="initiate_login_uri placeholder",
        ),
        pytest.param(
            "    category: finance\n",
            f"apps.yaml:9: {TEAMS}.category",
            "duplicate key",
            id="duplicate yaml key",
        ),
        pytest.param(
            "  - id: teams\n    name: Teams again\n    url: https://teams.example/\n",
            "apps.yaml:9: apps[1] (id: teams).id",
            "duplicate id 'teams' (first defined on line 5)",
            id="duplicate app id",
        ),
        pytest.param(
            "  - id: Teams2\n    name: T\n    url: https://teams.example/\n",
            "apps.yaml:9: apps[1] (id: Teams2).id",
            "should match pattern",
            id="id uppercase",
        ),
        pytest.param(
            "  - id: -teams\n    name: T\n    url: https://teams.example/\n",
            "apps.yaml:9: apps[1] (id: -teams).id",
            "should match pattern",
            id="id leading dash",
        ),
        pytest.param(
            "  - id: chat\n    url: https://chat.example/\n",
            "apps.yaml:9: apps[1] (id: chat).name",
            "required field is missing",
            id="name missing",
        ),
        pytest.param(
            "  - id: chat\n    name: Chat\n",
            "apps.yaml:9: apps[1] (id: chat).url",
            "required field is missing",
            id="url missing",
        ),
        pytest.param(
            "  - name: Chat\n    url: https://chat.example/\n",
            "apps.yaml:9: apps[1].id",
            "required field is missing",
            id="id missing",
        ),
        pytest.param(
            "  - id: chat\n    name: ''\n    url: https://chat.example/\n",
            "apps.yaml:10: apps[1] (id: chat).name",
            "needs a text",
            id="empty name",
        ),
        pytest.param(
            "  - id: chat\n    name: 42\n    url: https://chat.example/\n",
            "apps.yaml:10: apps[1] (id: chat).name",
            "expected text",
            id="name number",
        ),
        pytest.param(
            "  - id: chat\n    <<: {name: Chat}\n    url: https://chat.example/\n",
            "apps.yaml:10: apps[1] (id: chat)",
            "merge keys (<<) are not supported",
            id="merge key",
        ),
    ],
)
def test_each_error_names_file_line_and_field(extra: str, where: str, message: str) -> None:
    found = problems(registry_text(extra))
    assert any(p.startswith(where + ": ") and message in p for p in found), found


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("http://teams.example/", "must be an https:// URL", id="http"),
        pytest.param("javascript:alert(1)", "must be an https:// URL", id="javascript"),
        pytest.param("ftp://files.example/", "must be an https:// URL", id="ftp"),
        pytest.param("https:///no-host", "must be an https:// URL", id="no host"),
        pytest.param("//teams.example/", "must be an https:// URL", id="scheme-relative"),
        pytest.param("' https://teams.example/'", "spaces, control characters", id="space"),
        pytest.param("'https://teams.example\\@evil.example/'", "'\\'", id="backslash"),
        pytest.param("https://{domain}/", "host name", id="placeholder is host"),
        pytest.param("https://intranet.{domain}/", "host name", id="placeholder in host"),
        pytest.param("https://{email}@teams.example/", "host name", id="placeholder in userinfo"),
        pytest.param("https://teams.example:{sub}/", "host name", id="placeholder in port"),
        pytest.param("https://teams.example/?u={mail}", "unknown placeholder {mail}", id="unknown"),
        pytest.param("https://teams.example/?u={}", "unknown placeholder {}", id="empty"),
        pytest.param("https://teams.example/?u={email", "unbalanced braces", id="open brace"),
        pytest.param("https://teams.example/?u=email}", "unbalanced braces", id="close brace"),
        pytest.param("https://teams.example/?u={email!r}", "without '!' or ':'", id="conversion"),
        pytest.param("https://teams.example/?u={email:>30}", "without '!' or ':'", id="format"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    problem = one_problem(registry_text(url=url))
    assert problem.startswith(f"apps.yaml:7: {TEAMS}.url: "), problem
    assert message in problem


def test_escaped_braces_and_known_placeholders_are_fine() -> None:
    url = "https://teams.example/{{literal}}?u={email}&n={name}&s={sub}&p={upn}&d={domain}"
    assert parse_registry(registry_text(url=url)).apps[0].url == url


def test_category_errors() -> None:
    text = """\
categories:
  - id: care
    name: Care
  - id: care
    name: {en: Care, fr: Soins}
apps:
  - id: ehr
    name: EHR
    url: https://ehr.example/
    category: finance
"""
    assert problems(text) == [
        "apps.yaml:4: categories[1] (id: care).id: duplicate id 'care' (first defined on line 2)",
        "apps.yaml:5: categories[1] (id: care).name.fr: unknown key",
        "apps.yaml:10: apps[0] (id: ehr).category: unknown category 'finance' (known: care)",
    ]


def test_unknown_category_without_any_categories() -> None:
    text = "apps:\n  - id: a\n    name: A\n    url: https://a.example/\n    category: x\n"
    assert problems(text) == [
        "apps.yaml:5: apps[0] (id: a).category: unknown category 'x' (known: none defined)"
    ]


def test_duplicate_department_id() -> None:
    text = (
        "departments:\n  - {id: it, name: IT}\n  - {id: it, name: ICT}\n"
        "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n"
    )
    assert problems(text) == [
        "apps.yaml:3: departments[1] (id: it).id: duplicate id 'it' (first defined on line 2)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("apps:\n  - id: a\n   name: A\n", "apps.yaml:3: (YAML): ", id="indentation"),
        pytest.param("apps:\n\t- id: a\n", "apps.yaml:2: (YAML): ", id="tab"),
        pytest.param("apps:\n  - name: 'unclosed\n", "apps.yaml:3: (YAML): ", id="unclosed quote"),
        pytest.param("", "apps.yaml:1: (top level): expected a mapping", id="empty file"),
        pytest.param("- a\n- b\n", "apps.yaml:1: (top level): expected a mapping", id="list"),
        pytest.param("portal: {title: X}\n", "apps.yaml:1: apps: required field", id="no apps"),
        pytest.param("a: &a [*a]\napps: []\n", "apps.yaml:1: (YAML): ", id="recursive alias"),
    ],
)
def test_documents_that_are_not_registries(text: str, expected: str) -> None:
    assert one_problem(text).startswith(expected)


def test_every_kind_of_problem_is_reported_at_once_in_line_order() -> None:
    """A schema error elsewhere must not hide the duplicate id, unknown category or icon."""
    text = """\
categories:
  - id: care
    name: Care
apps:
  - id: ehr
    name: EHR
    url: http://ehr.example/
  - id: ehr
    name: EHR 2
    url: https://ehr2.example/
    category: finance
    icon: nowhere.svg
    order: ten
"""
    assert problems(text, source="config/apps.yaml") == [
        "config/apps.yaml:7: apps[0] (id: ehr).url: must be an https:// URL, "
        "got 'http://ehr.example/'",
        "config/apps.yaml:8: apps[1] (id: ehr).id: duplicate id 'ehr' (first defined on line 5)",
        "config/apps.yaml:11: apps[1] (id: ehr).category: unknown category 'finance' (known: care)",
        "config/apps.yaml:12: apps[1] (id: ehr).icon: no icon file 'nowhere.svg' "
        "in the built-in icons",
        "config/apps.yaml:13: apps[1] (id: ehr).order: Input should be a valid integer",
    ]


def test_cross_checks_see_items_that_fail_the_schema_themselves() -> None:
    text = registry_text(
        "  - id: teams\n    name: Teams\n    url: ftp://teams.example/\n    category: nope\n"
    )
    assert problems(text) == [
        "apps.yaml:9: apps[1] (id: teams).id: duplicate id 'teams' (first defined on line 5)",
        "apps.yaml:11: apps[1] (id: teams).url: must be an https:// URL, "
        "got 'ftp://teams.example/'",
        "apps.yaml:12: apps[1] (id: teams).category: unknown category 'nope' "
        "(known: communication)",
    ]


# --- display order, visibility ----------------------------------------------------------

ORDERED = """\
categories:
  - {id: later, name: Later, order: 20}
  - {id: first, name: First, order: 10}
  - {id: tied, name: Tied, order: 20}
apps:
  - {id: loose, name: Loose, url: 'https://x.example/'}
  - {id: zeta, name: Zeta, url: 'https://x.example/', category: first}
  - {id: alpha, name: alpha, url: 'https://x.example/', category: first}
  - {id: beta, name: Beta, url: 'https://x.example/', category: first, order: -1}
  - {id: tied-app, name: A, url: 'https://x.example/', category: tied}
  - {id: later-app, name: Z, url: 'https://x.example/', category: later}
  - {id: staff-only, name: S, url: 'https://x.example/', category: later, groups: [staff]}
  - {id: secret, name: H, url: 'https://x.example/', category: later, hidden: true, order: 5}
"""


def test_display_order_is_category_order_then_order_then_name() -> None:
    registry = parse_registry(ORDERED)
    # first (10); later and tied share 20, so file order decides; no category comes last;
    # within a category: `order`, then the name without regard to case
    assert [app.id for app in registry.apps] == [
        "beta",
        "alpha",
        "zeta",
        "staff-only",
        "later-app",
        "secret",
        "tied-app",
        "loose",
    ]


def test_visibility_by_groups_and_hidden() -> None:
    registry = parse_registry(ORDERED)
    staff = {app.id for app in registry.visible_apps(["staff", "other"])}
    nobody = {app.id for app in registry.visible_apps([])}
    assert "staff-only" in staff
    assert "staff-only" not in nobody
    assert staff - nobody == {"staff-only"}
    # hidden: no tile, but still launchable by those allowed, so it stays visible to them
    secret = registry.app("secret")
    assert secret is not None and secret.hidden and secret.visible_to([])
    assert registry.app("nope") is None
    assert registry.known_groups() == {"staff"}


def test_is_new_until_and_including_the_date() -> None:
    app = App.model_validate(
        {"id": "a", "name": "A", "url": "https://a.example/", "new_until": "2026-12-31"}
    )
    assert app.is_new(dt.date(2026, 12, 31))
    assert not app.is_new(dt.date(2027, 1, 1))
    plain = App.model_validate({"id": "a", "name": "A", "url": "https://a.example/"})
    assert not plain.is_new(dt.date(2000, 1, 1))


def test_localized_text() -> None:
    registry = parse_registry(
        "apps:\n  - id: a\n    name: {nl: Roosters}\n    url: https://a.example/\n"
        "    description: {en: Shifts, nl: Diensten}\n"
    )
    app = registry.apps[0]
    assert app.name.get("en") == "Roosters"  # falls back to the language there is
    assert app.description is not None
    assert (app.description.get("nl"), app.description.get("en")) == ("Diensten", "Shifts")
    assert app.description.get("get") == "Shifts"  # not a method name by accident


# --- launch URLs ------------------------------------------------------------------------


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


# --- files and the live holder ----------------------------------------------------------


def test_example_registry_is_valid_and_representative() -> None:
    registry = load_registry(EXAMPLE_APPS)
    assert 12 <= len(registry.apps) <= 20
    assert 4 <= len(registry.categories) <= 5
    used = {app.category for app in registry.apps}
    assert used == {c.id for c in registry.categories}, "every category has apps"
    restricted = [app for app in registry.apps if app.groups]
    assert len(restricted) >= 3
    assert len(registry.known_groups()) >= 3
    assert any(app.hidden for app in registry.apps)
    assert any(app.initiate_login_uri for app in registry.apps)
    assert any(app.new_until for app in registry.apps)
    assert any("{" in app.url for app in registry.apps)


def test_load_registry_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RegistryError) as info:
        load_registry(missing)
    assert info.value.problems == [
        f"{missing}:1: (file): cannot read it: {os.strerror(errno.ENOENT)}"
    ]

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(
        "apps:\n  - {id: a, name: Caf\xe9, url: 'https://a.example/'}\n".encode("latin-1")
    )
    with pytest.raises(RegistryError, match=r"latin1.yaml:1: \(file\): not UTF-8 text"):
        load_registry(latin1)


def test_load_registry_accepts_a_bom_and_icons_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / "icons").mkdir()
    (tmp_path / "icons" / "own.svg").write_text("<svg/>")
    path = tmp_path / "apps.yaml"
    path.write_text(
        "apps:\n  - {id: a, name: A, url: 'https://a.example/', icon: own.svg}\n",
        encoding="utf-8-sig",
    )
    registry = load_registry(path)
    assert registry.apps[0].icon == "own.svg"
    assert registry.source == str(path)


def test_json_schema_accepts_plain_and_localized_text() -> None:
    schema = json_schema()
    name = schema["$defs"]["App"]["properties"]["name"]
    assert {"type": "string"} in name["anyOf"]
    assert {"$ref": "#/$defs/Localized"} in name["anyOf"]
    assert schema["required"] == ["apps"]
    assert schema["$defs"]["App"]["additionalProperties"] is False


def _write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


GOOD = "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n"
GOOD_2 = "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n  - {id: b, name: B, url: 'https://b.example/'}\n"
BROKEN = "apps:\n  - {id: a, name: A, url: 'http://a.example/'}\n"


def test_holder_loads_and_picks_up_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    _write(path, GOOD, 1_700_000_000)
    holder = RegistryHolder(path)
    assert not holder.ready
    assert holder.reload_if_changed() is True
    assert holder.ready and holder.errors == [] and holder.loaded_at is not None
    assert holder.reload_if_changed() is False  # unchanged: not read again

    _write(path, GOOD_2, 1_700_000_100)
    assert holder.reload_if_changed() is True
    assert [app.id for app in holder.current.apps] == ["a", "b"]


def test_holder_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    _write(path, GOOD, 1_700_000_000)
    holder = RegistryHolder(path)
    holder.reload_if_changed()
    # same length, same mtime (as `cp -p` or a fast second save leaves it): ctime still moves
    _write(path, GOOD.replace("name: A", "name: X"), 1_700_000_000)
    assert holder.reload_if_changed() is True
    assert holder.current.apps[0].name.get("en") == "X"


def test_holder_keeps_the_last_good_registry_on_a_broken_edit(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    _write(path, GOOD_2, 1_700_000_000)
    holder = RegistryHolder(path)
    holder.reload_if_changed()

    _write(path, BROKEN, 1_700_000_100)
    assert holder.reload_if_changed() is False
    assert [app.id for app in holder.current.apps] == ["a", "b"]
    assert holder.errors == [
        f"{path}:2: apps[0] (id: a).url: must be an https:// URL, got 'http://a.example/'"
    ]

    path.unlink()
    assert holder.reload_if_changed() is False
    assert holder.ready and holder.errors[0].startswith(f"{path}:1: (file): cannot read it")

    _write(path, GOOD, 1_700_000_200)
    assert holder.reload_if_changed() is True
    assert holder.errors == []
    assert [app.id for app in holder.current.apps] == ["a"]


def test_holder_without_a_file_at_start_is_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    holder = RegistryHolder(path)
    assert holder.reload_if_changed() is False
    assert not holder.ready
    assert len(holder.errors) == 1 and str(path) in holder.errors[0]
    with pytest.raises(RegistryError):
        _ = holder.current

    _write(path, GOOD, 1_700_000_000)
    assert holder.reload_if_changed() is True
    assert holder.ready and holder.errors == []
