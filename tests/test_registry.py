"""The registry format and its loader: file:line errors, display order, untrusted YAML.

Launch URLs are in test_registry_launch_urls.py, the live reload in test_registry_holder.py.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
from pathlib import Path

import pytest

from launcher.errors import RegistryError
from launcher.registry import (
    MAX_BYTES,
    App,
    json_schema,
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
        pytest.param(
            "a: &a [*a]\napps: []\n",
            "apps.yaml:1: (YAML): YAML aliases are not allowed",
            id="recursive alias",
        ),
        pytest.param("[" * 200_000, "apps.yaml:1: (YAML): ", id="nested too deeply"),
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


# --- files -----------------------------------------------------------------------------


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


def test_line_numbers_follow_keys_items_and_crlf_line_ends(tmp_path: Path) -> None:
    text = (
        "# comment\n\nportal:\n  title: T\n  timezone: Mars/Olympus\n"
        "apps:\n  - id: a\n    name: A\n    url: https://a.example/\n"
        "  -\n    id: b\n\n    name: B\n    url: http://b.example/\n"
    )
    expected = [
        "5: portal.timezone: unknown time zone 'Mars/Olympus' (use an IANA name)",
        "14: apps[1] (id: b).url: must be an https:// URL, got 'http://b.example/'",
    ]
    assert problems(text) == [f"apps.yaml:{line}" for line in expected]
    path = tmp_path / "apps.yaml"
    path.write_bytes(text.replace("\n", "\r\n").encode())  # a Windows editor's line ends
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.problems == [f"{path}:{line}" for line in expected]


# --- untrusted YAML: aliases and size ---------------------------------------------------

# 369 bytes that expand to 9**9 strings (1.3 GB, 10 s) when aliases are followed
BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
apps: []
"""
NO_ALIASES = "(YAML): YAML aliases are not allowed"


def test_billion_laughs_is_refused_at_its_first_anchor(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:1: {NO_ALIASES}"), problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            "apps:\n  - id: a\n    name: &n A\n    url: https://a.example/\n", 3, id="anchor"
        ),
        pytest.param(
            "defaults: &d {name: A}\napps:\n  - id: a\n    url: https://a.example/\n    <<: *d\n",
            1,
            id="merge from an anchor",
        ),
        pytest.param(
            "apps:\n  - &app {id: a, name: A, url: 'https://a.example/'}\n  - *app\n",
            2,
            id="repeated item",
        ),
    ],
)
def test_every_anchor_and_alias_is_refused_with_its_line(text: str, line: int) -> None:
    assert one_problem(text).startswith(f"apps.yaml:{line}: {NO_ALIASES}")


def test_an_ampersand_or_asterisk_inside_text_is_no_alias() -> None:
    text = "apps:\n  - {id: a, name: 'R&D *new*', url: 'https://a.example/?a=1&b=*'}\n"
    assert parse_registry(text).apps[0].name.get("en") == "R&D *new*"


def _sized(size: int) -> str:
    head = "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n"
    return head + "#" * (size - len(head) - 1) + "\n"


def test_a_file_over_1_mib_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    path.write_text(_sized(MAX_BYTES))
    assert [app.id for app in load_registry(path).apps] == ["a"]  # 1 MiB exactly is fine

    path.write_text(_sized(MAX_BYTES + 1))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.problems == [
        f"{path}:1: (file): larger than 1,048,576 bytes (1 MiB), the most a registry may be"
    ]


def test_text_over_1_mib_is_refused_too() -> None:
    assert parse_registry(_sized(MAX_BYTES)).apps[0].id == "a"
    assert one_problem(_sized(MAX_BYTES + 1)).startswith("apps.yaml:1: (file): larger than")
    # counted in bytes, not characters: 600,000 two-byte letters are over the limit
    assert one_problem("apps: []\n# " + "é" * 600_000).startswith("apps.yaml:1: (file): ")


SIGNIN_IDS = """
apps:
  - id: teams
    name: Teams
    url: https://teams.microsoft.com/
    signin_ids: [1fec8e78-bce4-4aaf-ab1b-5451cc387264, 5e3ce6c0-2b1f-4285-8d4b-75ee78787346]
  - id: ehr
    name: EHR
    url: https://ehr.example.org/
    signin_ids:
      - epd-client
      - 1fec8e78-bce4-4aaf-ab1b-5451cc387264
"""


def test_signin_ids_map_provider_ids_to_apps_and_are_unique_across_apps() -> None:
    problem = one_problem(SIGNIN_IDS)
    assert problem.startswith("apps.yaml:12: apps[1] (id: ehr).signin_ids[1]: ")
    assert "already belongs to app 'teams' (line 6)" in problem
    registry = parse_registry(
        SIGNIN_IDS.replace("      - 1fec8e78-bce4-4aaf-ab1b-5451cc387264\n", "")
    )
    assert registry.signin_map() == {
        "1fec8e78-bce4-4aaf-ab1b-5451cc387264": "teams",
        "5e3ce6c0-2b1f-4285-8d4b-75ee78787346": "teams",
        "epd-client": "ehr",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("signin_ids: abc", "expected a list", id="not a list"),
        pytest.param("signin_ids: ['']", "at least 1 character", id="empty id"),
        pytest.param("signin_ids: [12]", "valid string", id="a number"),
    ],
)
def test_bad_signin_ids(value: str, message: str) -> None:
    assert message in one_problem(registry_text("    " + value + "\n"))


# --- reports: portal.decline_threshold, portal.leaver_days, departments -----------------------
_APP = "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n"


def test_decline_threshold_and_leaver_days_defaults_and_values() -> None:
    assert parse_registry(_APP).portal.decline_threshold == 0.10
    assert parse_registry(_APP).portal.leaver_days == 90
    text = "portal: {decline_threshold: 0.25, leaver_days: 60}\n" + _APP
    portal = parse_registry(text).portal
    assert (portal.decline_threshold, portal.leaver_days) == (0.25, 60)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("0", "greater than 0", id="zero"),
        pytest.param("1", "less than 1", id="one"),
        pytest.param("-0.1", "greater than 0", id="negative"),
        pytest.param("10", "less than 1", id="a percentage, not a share"),
        pytest.param("lots", "valid number", id="text"),
    ],
)
def test_decline_threshold_lies_between_0_and_1(value: str, message: str) -> None:
    [problem] = problems(f"portal:\n  decline_threshold: {value}\n" + _APP)
    assert problem.startswith("apps.yaml:2: portal.decline_threshold: ") and message in problem


def test_leaver_days_is_a_whole_positive_number() -> None:
    for days in ("0", "30"):  # not more than the 30 days that make someone dormant
        [problem] = problems(f"portal:\n  leaver_days: {days}\n" + _APP)
        assert problem.startswith("apps.yaml:2: portal.leaver_days: ") and "31" in problem
    [problem] = problems("portal:\n  leaver_days: '90'\n" + _APP)
    assert "valid integer" in problem


def test_department_claim_values_and_dated_headcount() -> None:
    text = (
        "departments:\n"
        "  - id: nursing\n"
        "    name: Nursing\n"
        "    claim_values: [VPL, Verpleging]\n"
        "    headcount: {2025-01-01: 840, 2026-01-01: 810}\n"
        "  - {id: it, name: IT, headcount: 80}\n" + _APP
    )
    registry = parse_registry(text)
    nursing, it = registry.departments
    assert registry.department_map() == {
        "nursing": "nursing",
        "VPL": "nursing",
        "Verpleging": "nursing",
        "it": "it",
    }
    assert nursing.headcount_at(dt.date(2024, 6, 1)) == 840  # before every date: the first
    assert nursing.headcount_at(dt.date(2025, 12, 31)) == 840
    assert nursing.headcount_at(dt.date(2026, 1, 1)) == 810
    assert it.headcount_at(dt.date(2026, 1, 1)) == 80


@pytest.mark.parametrize(
    ("department", "expected"),
    [
        pytest.param(
            "  - {id: it, name: IT, claim_values: [VPL]}\n",
            "apps.yaml:3: departments[1] (id: it).claim_values[0]: claim value 'VPL' already "
            "belongs to department 'nursing' (line 2)",
            id="a value of two departments",
        ),
        pytest.param(
            "  - {id: it, name: IT, claim_values: [nursing]}\n",
            "apps.yaml:3: departments[1] (id: it).claim_values[0]: claim value 'nursing' already "
            "belongs to department 'nursing' (line 2)",
            id="another department's id",
        ),
        pytest.param(
            "  - {id: it, name: IT, headcount: {2025-01-01: -3}}\n",
            "apps.yaml:3: departments[1] (id: it).headcount",
            id="negative headcount",
        ),
        pytest.param(
            "  - {id: it, name: IT, headcount: {first of may: 3}}\n",
            "apps.yaml:3: departments[1] (id: it).headcount",
            id="not a date",
        ),
        pytest.param(
            "  - {id: it, name: IT, headcount: {}}\n",
            "apps.yaml:3: departments[1] (id: it).headcount: give at least one date",
            id="no dates",
        ),
    ],
)
def test_department_errors(department: str, expected: str) -> None:
    text = "departments:\n  - {id: nursing, name: Nursing, claim_values: [VPL]}\n" + department
    found = problems(text + _APP)
    assert found and all(p.startswith(expected) for p in found), found
