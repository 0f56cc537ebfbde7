"""``launcher demo``: the portal with the development identity provider, on loopback only.

The demo keeps its state under ``var/``: a SQLite database, the session key (so a restart
keeps people signed in), the provider's signing key and the hallway screens' tokens (so a
screen's URL survives a restart). The OIDC client secret is not kept:
portal and provider are one process, so a fresh random secret each start is all they need,
and it shares nothing with the session key.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
from collections.abc import MutableMapping
from pathlib import Path

import sqlalchemy as sa

from launcher import db, logs
from launcher.auth.user import pseudonym
from launcher.demo import data
from launcher.demo import signins as demo_signins
from launcher.engage import announcements
from launcher.errors import LauncherError
from launcher.registry import Registry, load_registry
from launcher.serve import GRACEFUL_SHUTDOWN
from launcher.settings import Settings, load_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEMO_CLIENT_ID = "launcher-demo"


def demo_settings(host: str, port: int, var: Path = Path("var"), **overrides: object) -> Settings:
    """Settings for ``launcher demo``: SQLite under var/, the development provider, a saved key."""
    var.mkdir(parents=True, exist_ok=True)
    key_file = var / "demo-secret"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    base = f"http://{'[::1]' if host == '::1' else host}:{port}"
    values: dict[str, object] = {
        "base_url": base,
        "secret_key": key_file.read_text().strip(),
        "oidc_issuer": f"{base}/_devidp",
        "oidc_client_id": DEMO_CLIENT_ID,
        "oidc_client_secret": secrets.token_urlsafe(32),  # per start; see the module docstring
    }
    if "LAUNCHER_DATABASE_URL" not in os.environ:
        values["database_url"] = f"sqlite:///{var}/demo.db"
    return load_settings(**{**values, **overrides})


def build_demo_app(settings: Settings, var: Path = Path("var")) -> object:
    """The portal with the development provider mounted at /_devidp."""
    from starlette.routing import Mount

    from launcher.app import create_app
    from launcher.demo.devidp import DevClient, create_devidp

    assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
    idp = create_devidp(
        settings.oidc_issuer,
        [
            DevClient(
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret.get_secret_value(),
                redirect_uris=(settings.redirect_uri,),
                post_logout_redirect_uris=(f"{settings.base_url}/signed-out",),
            )
        ],
        key_file=var / "devidp-key.json",
    )
    app = create_app(settings, extra_routes=[Mount("/_devidp", app=idp)], migrate=True)
    app.state.context.templates.env.auto_reload = True  # edited templates show at once
    return app


def demo_history(settings: Settings) -> None:
    """On the demo's first start, 14 months of history so that every chart has a story."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        empty = conn.execute(sa.text("SELECT 1 FROM launch_event LIMIT 1")).first() is None
    if empty:
        registry = load_registry(settings.apps_file)
        months = 14
        go_live = registry.portal.go_live
        today = dt.datetime.now(dt.UTC).date()
        if go_live and go_live < today:  # cover go-live, so "vs. go-live" has its baseline
            months = max(months, (today.year - go_live.year) * 12 + today.month - go_live.month + 1)
        print(
            f"  First start: generating {months} months of launch and sign-in history …",
            file=sys.stderr,
        )
        data.generate(
            engine,
            registry,
            months=months,
            employees=2000,
            pseudonym_key=settings.pseudonym_secret(),
            progress=data.progress_bar,
            signins=Path("var") / demo_signins.FILE,  # and the provider's log, imported
        )
    engine.dispose()


# (title, body, link, days from today to the end, groups, language): the demo's news, written
# by its editor. Dutch and English for everyone; one for the clinicians only.
DEMO_NEWS = (
    (
        "Het intranet staat nu ook op je telefoon",
        "Open het portaal in de browser van je telefoon en log in zoals altijd.\n"
        "Je favorieten reizen mee.",
        None,
        30,
        "",
        "nl",
    ),
    (
        "The intranet is on your phone now",
        "Open the portal in your phone's browser and sign in as usual.\n"
        "Your favourites come along.",
        None,
        30,
        "",
        "en",
    ),
    (
        "Nieuwe versie van het EPD op maandag",
        "Het EPD is maandag tussen 06:00 en 07:00 niet beschikbaar.\n"
        "Gebruik in die tijd de papieren noodprocedure.",
        "https://www.zorggroep-noord.example/epd-update",
        10,
        "clinicians",
        "",
    ),
)


def demo_announcements(settings: Settings, editor_sub: str = "demo-eva") -> int:
    """The demo's announcements, when it has none (its first start); returns how many."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    today = dt.date.today()
    assert settings.oidc_issuer
    author = pseudonym(settings.pseudonym_secret(), settings.oidc_issuer, editor_sub)
    created = 0
    with engine.connect() as conn:
        empty = conn.execute(sa.text("SELECT 1 FROM announcement LIMIT 1")).first() is None
    if empty:
        for title, body, link, days, groups, language in DEMO_NEWS:
            draft = announcements.parse(
                {
                    "title": title,
                    "body": body,
                    "link": link or "",
                    "starts": (today - dt.timedelta(days=1)).isoformat(),
                    "ends": (today + dt.timedelta(days=days)).isoformat(),
                    "groups": groups,
                    "language": language,
                }
            )
            announcements.create(engine, draft, author)
            created += 1
    engine.dispose()
    return created


def demo_displays(
    registry: Registry, var: Path = Path("var"), environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """A token for each of the registry's hallway screens whose variable is unset, kept under
    var/ and set in this process's environment; returns {display id: token}."""
    env = os.environ if environ is None else environ
    var.mkdir(parents=True, exist_ok=True)
    tokens = {}
    for display in registry.displays:
        token = env.get(display.token_env)
        if not token:
            saved = var / f"display-{display.id}"
            if not saved.exists():
                saved.write_text(secrets.token_urlsafe(32))
                saved.chmod(0o600)
            token = saved.read_text().strip()
            env[display.token_env] = token
        tokens[display.id] = token
    return tokens


def run_demo(host: str, port: int) -> None:
    """Serve the demo on ``host`` (a loopback address) until interrupted."""
    import uvicorn

    from launcher.demo.users import DEMO_USERS

    if host not in LOOPBACK:
        raise LauncherError("the demo serves only on a loopback address (127.0.0.1, ::1)")
    settings = demo_settings(host, port)
    demo_history(settings)
    demo_announcements(settings)
    tokens = demo_displays(load_registry(settings.apps_file))  # before the app reads them
    app = build_demo_app(settings)
    users = "\n".join(f"    {u.name} ({', '.join(u.groups)})" for u in DEMO_USERS)
    screens = "".join(
        f"  Hallway screen {d}: {settings.base_url}/display/{t}\n" for d, t in tokens.items()
    )
    print(
        f"\n  Launcher demo on {settings.base_url}\n{screens}"
        f"  Sign in as one of the demo users on the development provider's page:\n{users}\n"
        "  The reviewer sees /reports; the admin sees /admin; the editor writes announcements\n"
        "  on /admin/announcements. Never use the demo in production.\n",
        flush=True,
    )
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        server_header=False,
        log_level="info",
        access_log=settings.access_log,
        log_config=logs.dict_config(settings.log_format),
    )
