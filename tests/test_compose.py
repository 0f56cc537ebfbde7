"""docker-compose.yml is for our users; no Docker engine here, so it is checked statically."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from launcher.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def test_every_service_has_an_image_or_build() -> None:
    services = _compose()["services"]
    assert {"db", "launcher"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_environment_names_are_settings() -> None:
    known = {f"LAUNCHER_{name.upper()}" for name in Settings.model_fields}
    used = {
        key
        for service in _compose()["services"].values()
        for key in (service.get("environment") or {})
        if key.startswith("LAUNCHER_")
    }
    assert used, "the portal service must be configured through LAUNCHER_* variables"
    assert used <= known, used - known
    required = {"LAUNCHER_SECRET_KEY", "LAUNCHER_OIDC_ISSUER", "LAUNCHER_DATABASE_URL"}
    assert required <= used


def test_database_url_uses_psycopg3() -> None:
    env = _compose()["services"]["launcher"]["environment"]
    assert env["LAUNCHER_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_env_example_names_are_settings() -> None:
    known = {f"LAUNCHER_{name.upper()}" for name in Settings.model_fields}
    names = set(re.findall(r"^(LAUNCHER_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert names and names <= known, names - known
