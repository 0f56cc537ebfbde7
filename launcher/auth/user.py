"""The signed-in user, as the rest of the portal sees it: typed, minimal, no tokens."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from launcher.errors import LoginFailed


@dataclass(frozen=True, slots=True)
class User:
    # pseudonymous: keyed hash of the issuer and the subject claim (LAUNCHER_SUBJECT_CLAIM,
    # ``sub`` unless set); what the database stores
    user_id: str
    sub: str  # the raw ``sub``, for URL placeholders only
    name: str
    email: str | None = None
    upn: str | None = None
    department: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def domain(self) -> str | None:
        for value in (self.email, self.upn):
            if value and "@" in value:
                return value.rsplit("@", 1)[1]
        return None

    def placeholders(self) -> dict[str, str]:
        """Values for URL placeholders; a missing claim fills in as an empty string."""
        return {
            "email": self.email or "",
            "sub": self.sub,
            "name": self.name,
            "upn": self.upn or self.email or "",
            "domain": self.domain or "",
        }

    def in_any(self, groups: Iterable[str]) -> bool:
        return not set(self.groups).isdisjoint(groups)


def pseudonym(key: bytes, issuer: str, subject: str) -> str:
    """The stored user id: a keyed hash of issuer and subject (128 bits, hex)."""
    return hmac.new(key, f"{issuer}\0{subject}".encode(), hashlib.sha256).hexdigest()[:32]


def department_of(value: Any, departments: Mapping[str, str] | None) -> str | None:
    """The department to record for a department claim's value.

    ``departments`` is the registry's map (``Registry.department_map``: each department's id
    and ``claim_values`` -> its id). Matching ignores case and surrounding spaces (HR systems
    write "VPL" and "vpl"). A value no department claims is recorded as no department (the
    reports' "unknown"), not as itself: an unmapped HR code would otherwise become a
    department of its own, perhaps of one person (docs/DECISIONS.md). Without any
    departments in the registry the claim's value is recorded as it is.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    if not departments:
        return value[:128]
    folded = {k.strip().casefold(): v for k, v in departments.items()}
    return folded.get(value.strip().casefold())


def user_from_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    pseudonym_key: bytes,
    groups_claim: str,
    department_claim: str,
    subject_claim: str = "sub",
    departments: Mapping[str, str] | None = None,
) -> User:
    """The portal's view of a validated, merged set of claims. Lengths are capped: the values
    go into a cookie and, the department, into the database.

    ``user_id`` is the pseudonym of ``subject_claim``'s value, so that it matches the user id
    in the provider's sign-in logs (launcher/signins). A missing or empty subject claim is a
    failed sign-in: a fallback to ``sub`` would split one person into two pseudonyms.
    ``departments`` maps the department claim to the registry's ids (:func:`department_of`)."""
    groups = claims.get(groups_claim) or ()
    if isinstance(groups, str):  # some providers send one space- or comma-separated string
        groups = [g for g in groups.replace(",", " ").split() if g]
    if not isinstance(groups, list | tuple):
        groups = ()
    department = claims.get(department_claim)
    email = claims.get("email")
    upn = claims.get("upn") or claims.get("preferred_username")
    sub = str(claims["sub"])
    subject = claims.get(subject_claim)
    if isinstance(subject, bool) or not isinstance(subject, str | int) or subject == "":
        raise LoginFailed(
            "The sign-in service did not say who you are in the way this portal expects. "
            "Please tell your IT department.",
            detail=f"claim {subject_claim!r} (LAUNCHER_SUBJECT_CLAIM) is missing or not a "
            "string in the ID token and userinfo",
        )
    name = claims.get("name") or " ".join(
        str(claims[k]) for k in ("given_name", "family_name") if claims.get(k)
    )
    return User(
        user_id=pseudonym(pseudonym_key, issuer, str(subject)),
        sub=sub,
        name=str(name or email or upn or sub)[:200],
        email=email[:320] if isinstance(email, str) else None,
        upn=upn[:320] if isinstance(upn, str) else None,
        department=department_of(department, departments),
        groups=tuple(g[:256] for g in groups if isinstance(g, str)),
    )
