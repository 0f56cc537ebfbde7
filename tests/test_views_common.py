"""launcher/views/common.py's pure helpers, called directly."""

from __future__ import annotations

import pytest

from launcher.views.common import cookie_value, safe_next


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("evil.example", id="relative"),
        pytest.param("//evil.example", id="protocol-relative"),
        pytest.param("///evil.example", id="three slashes"),
        pytest.param("/\\evil.example", id="slash backslash"),
        pytest.param("\\\\evil", id="two backslashes"),
        pytest.param("https://evil.example", id="absolute URL"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param(" /ok", id="leading space"),
        pytest.param("/\t/evil.example", id="tab"),
        pytest.param("/\r\nSet-Cookie: x=1", id="header injection"),
        pytest.param("/ok\x00", id="NUL"),
        pytest.param("/ok\x7f", id="DEL"),
        pytest.param("\uff0f\uff0fevil.example", id="fullwidth slashes"),
    ],
)
def test_safe_next_turns_anything_off_site_into_the_grid(value: str | None) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize(
    "value",
    ["/", "/launch/teams", "/reports?period=month&month=2025-03", "/%2F%2Fevil.example", "/a b"],
)
def test_safe_next_keeps_same_site_paths(value: str) -> None:
    assert safe_next(value) == value


def test_cookie_value_finds_one_cookie_by_its_exact_name() -> None:
    header = b"other=1; launcher_session=abc.def; launcher_session_x=no"
    assert cookie_value(header, "launcher_session") == "abc.def"
    assert cookie_value(header, "other") == "1"
    assert cookie_value(header, "missing") is None
    assert cookie_value(b"", "launcher_session") is None
    assert cookie_value(b"xlauncher_session=1", "launcher_session") is None
