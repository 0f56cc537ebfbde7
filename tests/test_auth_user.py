"""launcher/auth/user.py: the portal's view of a set of claims, called directly."""

from __future__ import annotations

from typing import Any

import pytest

from launcher.auth.user import User, pseudonym, user_from_claims

KEY = b"k" * 32
ISSUER = "https://idp.example"


def _user(**claims: Any) -> User:
    return user_from_claims(
        {"sub": "s1", **claims},
        issuer=ISSUER,
        pseudonym_key=KEY,
        groups_claim="groups",
        department_claim="department",
    )


def test_the_user_id_is_a_keyed_hash_of_issuer_and_subject() -> None:
    user = _user()
    assert user.user_id == pseudonym(KEY, ISSUER, "s1")
    assert len(user.user_id) == 32 and "s1" not in user.user_id
    assert pseudonym(KEY, ISSUER, "s2") != user.user_id
    assert pseudonym(KEY, "https://other.example", "s1") != user.user_id
    assert pseudonym(b"x" * 32, ISSUER, "s1") != user.user_id
    # no ambiguity between where the issuer ends and the subject starts
    assert pseudonym(KEY, "ab", "c") != pseudonym(KEY, "a", "bc")


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        pytest.param(["a", "b"], ("a", "b"), id="list"),
        pytest.param(("a",), ("a",), id="tuple"),
        pytest.param("a b,c", ("a", "b", "c"), id="one string, space and comma separated"),
        pytest.param(None, (), id="none"),
        pytest.param({"a": 1}, (), id="an object"),
        pytest.param(["a", 3, None], ("a",), id="non-strings dropped"),
    ],
)
def test_groups_in_any_shape_become_a_tuple_of_strings(groups: Any, expected: tuple[str]) -> None:
    assert _user(groups=groups).groups == expected


def test_name_falls_back_to_given_and_family_name_then_email_upn_and_sub() -> None:
    assert _user(name="Anouk").name == "Anouk"
    assert _user(given_name="Anouk", family_name="de Vries").name == "Anouk de Vries"
    assert _user(email="a@x.example").name == "a@x.example"
    assert _user(preferred_username="a@upn.example").name == "a@upn.example"
    assert _user().name == "s1"


def test_values_are_capped_and_wrong_types_dropped() -> None:
    user = _user(
        name="n" * 500,
        email="e" * 400,
        upn=["not", "a", "string"],
        department="d" * 200,
        groups=["g" * 300],
    )
    assert len(user.name) == 200
    assert user.email is not None and len(user.email) == 320
    assert user.upn is None
    assert user.department is not None and len(user.department) == 128
    assert user.groups == ("g" * 256,)
    assert _user(department="").department is None
    assert _user(department=7).department is None


def test_upn_comes_from_upn_or_preferred_username() -> None:
    assert _user(upn="u@x.example", preferred_username="p@x.example").upn == "u@x.example"
    assert _user(preferred_username="p@x.example").upn == "p@x.example"


def test_domain_and_placeholders() -> None:
    user = _user(name="A", email="a@zorg.example", groups=["staff"])
    assert user.domain == "zorg.example"
    assert user.placeholders() == {
        "email": "a@zorg.example",
        "sub": "s1",
        "name": "A",
        "upn": "a@zorg.example",  # the email stands in for a missing upn
        "domain": "zorg.example",
    }
    bare = _user(name="B")
    assert bare.domain is None
    assert bare.placeholders()["email"] == bare.placeholders()["domain"] == ""
    assert user.in_any(["x", "staff"]) and not user.in_any(["x"]) and not user.in_any([])
