"""Fuzzing the registry loader (launcher/registry/loader.py) with Hypothesis: whatever an admin
(or an attacker with write access to the ConfigMap) puts in apps.yaml, the loader answers with
a Registry or a RegistryError whose every problem names file:line and field -- never another
exception, and never unbounded work (aliases are refused, size is capped)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.errors import RegistryError
from launcher.registry import Registry, parse_registry
from tests.conftest import EXAMPLE_APPS
from tests.test_registry import PROBLEM

FUZZ = settings(
    max_examples=150,
    deadline=None,  # a shared machine: the size cap, not a clock, bounds the work
    suppress_health_check=[HealthCheck.too_slow],
)
EXAMPLE = EXAMPLE_APPS.read_text()
KEYS = [
    "portal", "apps", "categories", "departments", "displays", "id", "name", "url", "icon",
    "groups", "category", "hidden", "order", "new_until", "signin_ids", "go_live", "en", "nl",
    "headcount", "claim_values", "token_env", "timezone", "decline_threshold", "status_url",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["https://a.example/{email}", "http://x", "{sub}", "2026-13-45", "nl"]),
    st.dates().map(str),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=25,
)


def _check(text: str) -> None:
    try:
        result = parse_registry(text, source="apps.yaml")
    except RegistryError as exc:
        assert exc.problems, "an error without problems"
        for problem in exc.problems:
            assert PROBLEM.fullmatch(problem), f"not file:line: field: message: {problem!r}"
        return
    assert isinstance(result, Registry)


@FUZZ
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    _check(text)


@FUZZ
@given(documents)
def test_any_yaml_document(document: Any) -> None:
    _check(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(
    st.integers(min_value=0, max_value=len(EXAMPLE) - 1),
    st.integers(min_value=0, max_value=40),
    st.text(alphabet=st.sampled_from(list(" :-[]{}&*!|>'\"#\n\tx0")), max_size=12),
)
def test_the_example_registry_with_a_slip_of_the_keyboard(start: int, cut: int, typed: str) -> None:
    """An edit of a real file: some characters replaced by YAML's syntax characters."""
    _check(EXAMPLE[:start] + typed + EXAMPLE[start + cut :])


@FUZZ
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=2, max_value=9))
def test_nested_aliases_are_refused_before_they_expand(depth: int, width: int) -> None:
    lines = ["a0: &a0 [x, x]"]
    for level in range(1, depth + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    try:
        parse_registry("\n".join(lines) + "\napps: []\n", source="apps.yaml")
    except RegistryError as exc:
        assert any(re.search("alias", p) for p in exc.problems), exc.problems
    else:
        raise AssertionError("a registry with aliases was accepted")


def test_what_the_fuzzing_found() -> None:
    """Before: a control character escaped as yaml.reader.ReaderError (a crash, not a message),
    and a key such as ``0`` or ``Apps:`` broke the file:line: field: message shape."""
    for text, expected in (
        ("\x1f", "apps.yaml:1: (YAML): special characters are not allowed (U+001F)"),
        ("apps: []\n'0': x\n", "apps.yaml:2: (top level): unknown key ('0')"),
        (
            "apps:\n  - {id: a, name: A, url: 'https://a.example/', Icon: x}\n",
            "apps.yaml:2: apps[0] (id: a): unknown key ('Icon')",
        ),
    ):
        try:
            parse_registry(text, source="apps.yaml")
        except RegistryError as exc:
            assert expected in exc.problems, exc.problems
        else:
            raise AssertionError(f"{text!r} was accepted")
