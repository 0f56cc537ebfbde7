"""The signed-in user, as the rest of the portal sees it: typed, minimal, no tokens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    user_id: str  # pseudonymous: keyed hash of issuer and sub; what the database stores
    sub: str
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
