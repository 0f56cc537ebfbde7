"""docker-compose.yml is for our users' trials; no Docker engine here, so it is checked
statically: with itself, the Keycloak realm it imports, the Caddyfile in front and the portal's
settings, routes and command line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from launcher.cli import build_parser
from launcher.registry import load_registry
from launcher.settings import Settings
from launcher.views import auth

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose"
SETTINGS = {f"LAUNCHER_{name.upper()}" for name in Settings.model_fields}
PORTALS = ("launcher-1", "launcher-2")
# one demo user per role; the realm's groups for them (Settings' defaults name the last three)
ROLE_GROUPS = {"staff", "clinicians", "launcher-reviewers", "launcher-admins", "launcher-editors"}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _env(service: str) -> dict[str, str]:
    env: dict[str, str] = _services()[service]["environment"]
    return env


def _realm() -> dict[str, Any]:
    realm: dict[str, Any] = json.loads((COMPOSE / "realm-launcher.json").read_text())
    return realm


def _client() -> dict[str, Any]:
    clients = [
        c
        for c in _realm()["clients"]
        if c["clientId"] == _env(PORTALS[0])["LAUNCHER_OIDC_CLIENT_ID"]
    ]
    assert len(clients) == 1, "the realm must define the portal's client"
    client: dict[str, Any] = clients[0]
    return client


def _caddy_sites() -> dict[str, str]:
    """Caddyfile site address -> its block (the global options block left out)."""
    text = (COMPOSE / "Caddyfile").read_text()
    return dict(re.findall(r"^(\S+) \{\n(.*?)^\}", text, re.M | re.S))


def _base_url() -> str:
    return _env(PORTALS[0])["LAUNCHER_BASE_URL"]


def test_every_service_has_an_image_or_build() -> None:
    services = _services()
    assert {"db", "keycloak", "caddy", "migrate", *PORTALS} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_images_are_pinned() -> None:
    for name, service in _services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        # a release (postgres:17.5, caddy:2.10.0-alpine), never latest or a bare major
        assert re.match(r"\d+\.\d+", tag), f"{name}: pin {image}"


def test_environment_names_are_settings() -> None:
    used = {
        key
        for service in _services().values()
        for key in (service.get("environment") or {})
        if key.startswith("LAUNCHER_")
    }
    assert used, "the portal service must be configured through LAUNCHER_* variables"
    assert used <= SETTINGS, used - SETTINGS
    for portal in PORTALS:
        required = {
            "LAUNCHER_BASE_URL",
            "LAUNCHER_SECRET_KEY",
            "LAUNCHER_OIDC_ISSUER",
            "LAUNCHER_OIDC_CLIENT_ID",
            "LAUNCHER_OIDC_CLIENT_SECRET",
            "LAUNCHER_DATABASE_URL",
        }
        assert required <= set(_env(portal)), portal


def test_portal_settings_are_valid() -> None:
    env: dict[str, Any] = {
        key.removeprefix("LAUNCHER_").lower(): value
        for key, value in _env(PORTALS[0]).items()
        if key.startswith("LAUNCHER_") and key != "LAUNCHER_SECRET_KEY"
    }
    settings = Settings(_env_file=None, secret_key="x" * 32, **env)
    settings.require_production()
    assert settings.https
    # the secret key is the user's own, never one written in this repository
    assert _env(PORTALS[0])["LAUNCHER_SECRET_KEY"].startswith("${LAUNCHER_SECRET_KEY:?")


def test_database_url_points_at_the_database_service() -> None:
    db = _env("db")
    for service in ("migrate", *PORTALS):
        url = urlsplit(_env(service)["LAUNCHER_DATABASE_URL"])
        assert url.scheme == "postgresql+psycopg", service  # psycopg 3
        assert (url.hostname, url.port) == ("db", 5432), service
        assert (url.username, url.password) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"])
        assert url.path == "/" + db["POSTGRES_DB"]


def _command(service: str) -> Any:
    command = _services()[service]["command"]
    assert command[0] == "launcher", service
    return build_parser().parse_args(command[1:])


def test_migration_runs_before_the_portals() -> None:
    services = _services()
    migrate = _command("migrate")
    assert (migrate.command, migrate.db_command) == ("db", "upgrade")
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for portal in PORTALS:
        assert _command(portal).command == "serve"
        depends = services[portal]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_long_running_services_have_health_checks() -> None:
    for name, service in _services().items():
        if service.get("restart") == "no":
            continue  # one-shot: migrate, trust
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
    for portal in PORTALS:
        test = " ".join(_services()[portal]["healthcheck"]["test"])
        assert f"127.0.0.1:{_command(portal).port}/healthz" in test
        # the portal records every answered launch and exits within 10 s of SIGTERM
        assert int(_services()[portal]["stop_grace_period"].rstrip("s")) >= 15


def test_every_replica_has_its_own_spool_volume() -> None:
    spools = []
    for portal in PORTALS:
        spool = _env(portal)["LAUNCHER_SPOOL_DIR"]
        mounts = [v for v in _services()[portal]["volumes"] if v.split(":")[1] == spool]
        assert len(mounts) == 1, portal
        spools.append(mounts[0].split(":")[0])
    assert len(set(spools)) == len(PORTALS), "replicas must not share a spool"


def test_registry_is_mounted_as_a_directory() -> None:
    for portal in PORTALS:
        apps = Path(_env(portal)["LAUNCHER_APPS_FILE"])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in _services()[portal]["volumes"]}
        source = mounts[str(apps.parent)]
        assert load_registry(ROOT / source / apps.name).apps


def test_realm_client_uris_match_the_portal() -> None:
    base = _base_url()
    client = _client()
    attributes = client["attributes"]
    assert client["redirectUris"] == [Settings(_env_file=None, base_url=base).redirect_uri]
    uris = {
        "GET": [
            client["redirectUris"][0],
            attributes["post.logout.redirect.uris"],
            attributes["frontchannel.logout.url"],
        ],
        "POST": [attributes["backchannel.logout.url"]],
    }
    routes = {(route.path, method) for route in auth.routes for method in route.methods or ()}
    expected = ["/auth/callback", "/signed-out", "/auth/frontchannel-logout"]
    assert [uri.removeprefix(base) for uri in uris["GET"]] == expected
    assert [uri.removeprefix(base) for uri in uris["POST"]] == ["/auth/backchannel-logout"]
    for method, listed in uris.items():
        for uri in listed:
            assert (uri.removeprefix(base), method) in routes, f"{method} {uri} is no route"


def test_realm_client_is_the_confidential_client_the_portal_uses() -> None:
    client = _client()
    env = _env(PORTALS[0])
    assert (
        client["publicClient"] is False and client["secret"] == env["LAUNCHER_OIDC_CLIENT_SECRET"]
    )
    assert client["standardFlowEnabled"] and not client["implicitFlowEnabled"]
    assert not client["directAccessGrantsEnabled"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["attributes"]["backchannel.logout.session.required"] == "true"
    keycloak = _env("keycloak")
    assert env["LAUNCHER_OIDC_ISSUER"] == f"{keycloak['KC_HOSTNAME']}/realms/{_realm()['realm']}"


@pytest.mark.parametrize(
    ("mapper_type", "claim", "setting"),
    [
        ("oidc-group-membership-mapper", "groups", "groups_claim"),
        ("oidc-usermodel-attribute-mapper", "department", "department_claim"),
    ],
)
def test_realm_mappers_put_the_claims_the_portal_reads(
    mapper_type: str, claim: str, setting: str
) -> None:
    mappers = [m for m in _client()["protocolMappers"] if m["protocolMapper"] == mapper_type]
    assert len(mappers) == 1
    config = mappers[0]["config"]
    expected = _env(PORTALS[0]).get(
        f"LAUNCHER_{setting.upper()}", Settings.model_fields[setting].default
    )
    assert config["claim.name"] == claim == expected
    assert config["id.token.claim"] == config["userinfo.token.claim"] == "true"
    if claim == "groups":
        assert config["full.path"] == "false"  # "staff", not "/staff", as apps.yaml names them
    else:
        profile = json.loads(
            _realm()["components"]["org.keycloak.userprofile.UserProfileProvider"][0]["config"][
                "kc.user.profile.config"
            ][0]
        )
        assert config["user.attribute"] in {a["name"] for a in profile["attributes"]}


def test_realm_groups_and_demo_users_cover_every_role() -> None:
    realm = _realm()
    groups = {g["name"] for g in realm["groups"]}
    registry = load_registry(ROOT / "config" / "apps.yaml")
    used = {group for app in registry.apps for group in app.groups or ()}
    assert ROLE_GROUPS | used <= groups, (ROLE_GROUPS | used) - groups
    departments = {d.id for d in registry.departments}
    users = realm["users"]
    memberships = [{g.lstrip("/") for g in u["groups"]} for u in users]
    assert {"staff"} in memberships, "an employee with no other role"
    for role in ROLE_GROUPS - {"staff"}:
        assert {"staff", role} in memberships, role
    passwords = set()
    for user in users:
        assert user["enabled"] and user["email"]
        assert set(user["attributes"]["department"]) <= departments, user["username"]
        (credential,) = user["credentials"]
        assert credential["type"] == "password" and credential["temporary"] is False
        passwords.add(credential["value"])
    assert len(passwords) == 1, "one trial password for all demo users"
    readme = (ROOT / "README.md").read_text()
    assert f"`{passwords.pop()}`" in readme and all(f"`{u['username']}`" in readme for u in users)


def test_caddy_proxies_to_the_portal_replicas() -> None:
    sites = _caddy_sites()
    base = urlsplit(_base_url())
    block = sites[base.netloc]
    assert "tls internal" in block
    upstreams = re.search(r"reverse_proxy ([^{\n]+)", block)
    assert upstreams
    expected = [f"{portal}:{_command(portal).port}" for portal in PORTALS]
    assert upstreams.group(1).split() == expected
    assert re.search(r"^\s*health_uri /readyz$", block, re.M)
    caddy = _services()["caddy"]
    assert f"{base.port}:{base.port}" in caddy["ports"]
    issuer = urlsplit(_env(PORTALS[0])["LAUNCHER_OIDC_ISSUER"])
    assert "reverse_proxy keycloak:8080" in sites[issuer.netloc]
    # both names lead to Caddy inside the network too: the URLs are the same for everyone
    assert {base.hostname, issuer.hostname} <= set(caddy["networks"]["default"]["aliases"])


def test_portal_and_keycloak_trust_caddys_certificate_authority() -> None:
    trust = _services()["trust"]["entrypoint"][-1]
    copied = re.search(r"cp \S+ (\S+)", trust)
    assert copied
    assert _env(PORTALS[0])["SSL_CERT_FILE"] == copied.group(1)
    assert _env("keycloak")["KC_TRUSTSTORE_PATHS"] == copied.group(1)


def test_env_example_names_are_settings() -> None:
    names = set(re.findall(r"^(LAUNCHER_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert names and names <= SETTINGS, names - SETTINGS
