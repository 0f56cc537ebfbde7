"""The stored user id: the pseudonym of LAUNCHER_SUBJECT_CLAIM's value (launcher/auth/user.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from launcher.auth.user import pseudonym, user_from_claims
from launcher.errors import LoginFailed
from launcher.settings import Settings

KEY = b"k" * 32
ISS = "https://login.example.org/tenant/v2.0"


def _user(claims: dict[str, Any], subject_claim: str = "sub") -> Any:
    return user_from_claims(
        claims,
        issuer=ISS,
        pseudonym_key=KEY,
        groups_claim="groups",
        department_claim="department",
        subject_claim=subject_claim,
    )


def test_the_default_subject_is_sub(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().subject_claim == "sub"
    user = _user({"sub": "pairwise-123", "oid": "object-id"})
    assert user.user_id == pseudonym(KEY, ISS, "pairwise-123")


def test_entra_installs_pseudonymise_oid_and_keep_sub_for_placeholders(
    make_settings: Callable[..., Settings],
) -> None:
    assert make_settings(subject_claim="oid").subject_claim == "oid"
    user = _user({"sub": "pairwise-123", "oid": "object-id"}, "oid")
    assert user.user_id == pseudonym(KEY, ISS, "object-id")
    assert user.sub == "pairwise-123"
    assert user.placeholders()["sub"] == "pairwise-123"


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": "s"}, id="missing"),
        pytest.param({"sub": "s", "oid": ""}, id="empty"),
        pytest.param({"sub": "s", "oid": ["a"]}, id="a list"),
        pytest.param({"sub": "s", "oid": True}, id="a boolean"),
    ],
)
def test_a_missing_subject_claim_is_a_failed_sign_in(claims: dict[str, Any]) -> None:
    with pytest.raises(LoginFailed) as caught:
        _user(claims, "oid")
    assert caught.value.status == 400
    assert "oid" in (caught.value.detail or "")  # the log says which claim; the page, not
    assert "oid" not in caught.value.message
