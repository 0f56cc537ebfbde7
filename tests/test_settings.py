"""Settings: the LAUNCHER_* variables of DESIGN.md and the README, validated once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from launcher.errors import ConfigError
from launcher.settings import Settings, load_settings
from tests.helpers import ROOT, SECRET

# CI keeps the team's shared/ beside the clone; without it, this copy of DESIGN.md's table
# stands in (variable -> documented default; None where the default is "none").
DESIGN = ROOT.parent / "shared" / "DESIGN.md"
DESIGN_SETTINGS: dict[str, str | None] = {
    "LAUNCHER_BASE_URL": "http://127.0.0.1:8000",
    "LAUNCHER_SECRET_KEY": None,
    "LAUNCHER_OIDC_ISSUER": None,
    "LAUNCHER_OIDC_CLIENT_ID": None,
    "LAUNCHER_OIDC_CLIENT_SECRET": None,
    "LAUNCHER_OIDC_SCOPES": "openid profile email",
    "LAUNCHER_GROUPS_CLAIM": "groups",
    "LAUNCHER_DEPARTMENT_CLAIM": "department",
    "LAUNCHER_REVIEWER_GROUPS": "launcher-reviewers",
    "LAUNCHER_ADMIN_GROUPS": "launcher-admins",
    "LAUNCHER_DATABASE_URL": "sqlite:///var/launcher.db",
    "LAUNCHER_APPS_FILE": "config/apps.yaml",
    "LAUNCHER_REPORT_MIN_GROUP": "5",
}
UNSPECIFIED = object()  # a default described in words ("derived from the secret key")
PRODUCTION = {
    "LAUNCHER_SECRET_KEY": SECRET,
    "LAUNCHER_OIDC_ISSUER": "https://login.example/realms/zorg",
    "LAUNCHER_OIDC_CLIENT_ID": "launcher",
    "LAUNCHER_OIDC_CLIENT_SECRET": "client-secret",
}


def settings_table(markdown: str) -> dict[str, object]:
    """``| `LAUNCHER_X` / `LAUNCHER_Y` | default | meaning |`` rows -> {variable: default}."""
    table: dict[str, object] = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`LAUNCHER_"):
            continue
        literal = re.match(r"`([^`]*)`", cells[1])
        if literal:
            default: object = literal.group(1)
        elif cells[1].lower().startswith("none"):
            default = None
        else:
            default = UNSPECIFIED
        for name in re.findall(r"`(LAUNCHER_[A-Z0-9_]+)`", cells[0]):
            table[name] = default
    return table


def field_of(variable: str) -> str:
    name = variable.removeprefix("LAUNCHER_").lower()
    assert name in Settings.model_fields, f"{variable} has no Settings field"
    return name


def check_defaults(table: dict[str, object]) -> None:
    defaults = Settings()
    for variable, documented in table.items():
        name = field_of(variable)
        actual = getattr(defaults, name)
        if documented is None:
            assert actual is None, f"{variable}: documented without a default, has {actual!r}"
        elif documented is not UNSPECIFIED:
            parsed = getattr(load_settings(**{name: documented}), name)
            assert parsed == actual, f"{variable}: documented {documented!r}, default {actual!r}"


def test_settings_table_parser_reads_both_forms() -> None:
    table = settings_table(
        "| variable | default | meaning |\n|---|---|---|\n"
        "| `LAUNCHER_A` / `LAUNCHER_B` | none | x |\n| `LAUNCHER_C` | `5` (five) | y |\n"
        "| `LAUNCHER_D` | derived | z |\n| `OTHER` | `1` | not ours |\n"
    )
    assert table == {
        "LAUNCHER_A": None,
        "LAUNCHER_B": None,
        "LAUNCHER_C": "5",
        "LAUNCHER_D": UNSPECIFIED,
    }


def test_every_design_variable_is_a_field_with_its_documented_default() -> None:
    if DESIGN.is_file():
        table = settings_table(DESIGN.read_text(encoding="utf-8"))
        assert DESIGN_SETTINGS.items() <= table.items(), "update DESIGN_SETTINGS from DESIGN.md"
    else:
        table = dict(DESIGN_SETTINGS)
    check_defaults(table)


def test_readme_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = settings_table(readme)
    undocumented = [
        f"LAUNCHER_{name.upper()}"
        for name in Settings.model_fields
        if f"LAUNCHER_{name.upper()}" not in table
    ]
    assert not undocumented, f"README.md's settings table lacks {', '.join(undocumented)}"
    check_defaults(table)  # and documents nothing that is not a setting


def test_check_defaults_catches_a_wrong_default() -> None:
    with pytest.raises(AssertionError, match="LAUNCHER_REPORT_MIN_GROUP"):
        check_defaults({"LAUNCHER_REPORT_MIN_GROUP": "10"})
    with pytest.raises(AssertionError, match="has no Settings field"):
        check_defaults({"LAUNCHER_NO_SUCH_THING": None})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("a, b", ["a", "b"], id="comma space"),
        pytest.param(" a ,,b , ", ["a", "b"], id="blanks dropped"),
        pytest.param("Launcher Admins", ["Launcher Admins"], id="one with a space"),
    ],
)
def test_comma_lists(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]) -> None:
    monkeypatch.setenv("LAUNCHER_REVIEWER_GROUPS", raw)
    monkeypatch.setenv("LAUNCHER_ADMIN_GROUPS", raw)
    monkeypatch.setenv("LAUNCHER_OIDC_ALGORITHMS", "RS256, ES256")
    settings = load_settings()
    assert settings.reviewer_groups == expected
    assert settings.admin_groups == expected
    assert settings.oidc_algorithms == ["RS256", "ES256"]


@pytest.mark.parametrize("algorithms", ["none", "RS256,none", "RS256, NONE", "", " , "])
def test_alg_none_and_no_algorithm_are_refused(
    monkeypatch: pytest.MonkeyPatch, algorithms: str
) -> None:
    monkeypatch.setenv("LAUNCHER_OIDC_ALGORITHMS", algorithms)
    with pytest.raises(ConfigError, match="^invalid settings: LAUNCHER_OIDC_ALGORITHMS: "):
        load_settings()


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("127.0.0.1:8000", id="no scheme"),
        pytest.param("ftp://portal.example", id="ftp"),
        pytest.param("https://", id="no host"),
        pytest.param("https://portal.example/start", id="path"),
        pytest.param("https://portal.example/?x=1", id="query"),
    ],
)
def test_bad_base_url_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    monkeypatch.setenv("LAUNCHER_BASE_URL", base_url)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid settings: LAUNCHER_BASE_URL: must be")
    assert repr(base_url) in message
    assert "Value error" not in message


def test_base_url_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAUNCHER_BASE_URL", "https://portal.example/")
    settings = load_settings()
    assert settings.base_url == "https://portal.example"
    assert settings.redirect_uri == "https://portal.example/auth/callback"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LAUNCHER_OIDC_SCOPES", "profile email"),
        ("LAUNCHER_OIDC_ISSUER", "login.example"),
        ("LAUNCHER_REPORT_MIN_GROUP", "0"),
        ("LAUNCHER_REPORT_MIN_GROUP", "five"),
        ("LAUNCHER_SESSION_IDLE_TIMEOUT", "10"),
    ],
)
def test_other_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^invalid settings: {variable}: "):
        load_settings()


def test_model_level_errors_and_list_items_read_plainly() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(session_idle_timeout=7200, session_absolute_timeout=3600)
    assert str(info.value) == (
        "invalid settings: LAUNCHER_SESSION_IDLE_TIMEOUT must not exceed "
        "LAUNCHER_SESSION_ABSOLUTE_TIMEOUT"
    )
    with pytest.raises(ConfigError, match=r"LAUNCHER_REVIEWER_GROUPS: Input should be a valid str"):
        load_settings(reviewer_groups=[1])


def test_dotenv_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # conftest runs every test in its own tmp_path, which is the working directory
    (tmp_path / ".env").write_text(
        "LAUNCHER_BASE_URL=https://portal.example\n"
        "LAUNCHER_REVIEWER_GROUPS=audit, quality\n"
        "LAUNCHER_REPORT_MIN_GROUP=7\n"
        "UNRELATED=ignored\n"
    )
    monkeypatch.setenv("LAUNCHER_REPORT_MIN_GROUP", "9")
    settings = load_settings()
    assert settings.base_url == "https://portal.example"
    assert settings.reviewer_groups == ["audit", "quality"]
    assert settings.report_min_group == 9


def test_require_production_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings().require_production()
    for variable in PRODUCTION:
        assert variable in str(info.value)


@pytest.mark.parametrize("missing", sorted(PRODUCTION))
def test_require_production_names_exactly_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for variable, value in PRODUCTION.items():
        if variable != missing:
            monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings().require_production()
    named = set(re.findall(r"LAUNCHER_[A-Z_]+", str(info.value)))
    assert named == {missing}


def test_require_production_accepts_a_complete_config_but_not_a_short_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable, value in PRODUCTION.items():
        monkeypatch.setenv(variable, value)
    load_settings().require_production()
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", "too-short")
    with pytest.raises(ConfigError, match="LAUNCHER_SECRET_KEY must be at least 32"):
        load_settings().require_production()
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", "")
    with pytest.raises(ConfigError, match="missing LAUNCHER_SECRET_KEY"):
        load_settings().require_production()


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in PRODUCTION.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert SECRET not in repr(settings)
    assert "client-secret" not in repr(settings)
    assert settings.secret() == SECRET


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [("https://portal.example", True), ("http://127.0.0.1:8000", False)],
)
def test_host_prefixed_cookies_exactly_on_https(base_url: str, secure: bool) -> None:
    settings = load_settings(base_url=base_url)
    assert settings.https is secure
    assert settings.session_cookie.startswith("__Host-") is secure
    assert settings.login_cookie.startswith("__Host-") is secure
    assert settings.session_cookie != settings.login_cookie


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        pytest.param("https://Portal.Example.org:443/", "https://portal.example.org", id="https"),
        pytest.param("HTTP://x.example:80", "http://x.example", id="http default port"),
        pytest.param("http://127.0.0.1:8000", "http://127.0.0.1:8000", id="own port kept"),
        pytest.param("http://[::1]:8000", "http://[::1]:8000", id="ipv6"),
    ],
)
def test_base_url_is_the_origin_browsers_send(given: str, origin: str) -> None:
    """The CSRF guard compares the Origin header with the base URL as text."""
    assert load_settings(base_url=given).base_url == origin
