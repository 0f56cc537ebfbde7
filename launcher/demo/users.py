"""The demo's people: who the development identity provider lets you sign in as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoUser:
    sub: str
    name: str
    email: str
    department: str
    groups: tuple[str, ...]
    upn: str

    def profile(self) -> dict[str, Any]:
        """The claims of the ``profile`` and ``email`` scopes, as the ID token carries them."""
        return {
            "name": self.name,
            "email": self.email,
            "email_verified": True,
            "preferred_username": self.upn,
            "department": self.department,
            "groups": list(self.groups),
        }


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(
        sub="demo-anouk",
        name="Anouk de Vries",
        email="anouk.devries@zorggroep-noord.example",
        department="nursing",
        groups=("staff",),
        upn="adevries@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-bram",
        name="Bram Jansen",
        email="bram.jansen@zorggroep-noord.example",
        department="medical",
        groups=("staff", "clinicians"),
        upn="bjansen@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-fatima",
        name="Fatima El Amrani",
        email="fatima.elamrani@zorggroep-noord.example",
        department="support-office",
        groups=("staff", "launcher-reviewers"),
        upn="felamrani@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-joris",
        name="Joris van den Berg",
        email="joris.vandenberg@zorggroep-noord.example",
        department="it",
        groups=("staff", "launcher-admins"),
        upn="jvandenberg@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-eva",
        name="Eva Smit",
        email="eva.smit@zorggroep-noord.example",
        department="support-office",
        groups=("staff", "launcher-editors"),
        upn="esmit@zorggroep-noord.example",
    ),
)
