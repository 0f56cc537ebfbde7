"""The whole journey over real HTTP: sign-in -> grid -> launch -> sign-out, on both databases."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from launcher.settings import Settings
from tests.helpers import CLINICIAN, LiveServer, sign_in, wait_until


def test_sign_in_grid_launch_sign_out(demo_server: tuple[LiveServer, Settings]) -> None:
    server, settings = demo_server
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        anonymous = client.get(f"{server.url}/")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=/"

        landed = sign_in(client, server.url, CLINICIAN.sub, next_path="/")
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        grid = client.get(f"{server.url}/")
        assert grid.status_code == 200
        assert 'href="/launch/ehr"' in grid.text  # clinicians only
        assert 'href="/launch/admin-console"' not in grid.text
        assert "admin-console" not in grid.text
        assert 'href="/launch/time-tracking"' not in grid.text  # hidden: no tile
        assert '<form method="post" action="/logout"' in grid.text
        assert CLINICIAN.name in grid.text

        launched = client.get(f"{server.url}/launch/teams")
        assert launched.status_code == 303
        email = CLINICIAN.email.replace("@", "%40")
        assert launched.headers["location"] == f"https://teams.microsoft.com/?login_hint={email}"
        assert client.get(f"{server.url}/launch/admin-console").status_code == 404
        assert client.get(f"{server.url}/launch/time-tracking").status_code == 303

        engine = sa.create_engine(settings.database_url)
        try:

            def count() -> int:
                with engine.connect() as conn:
                    return int(
                        conn.execute(sa.text("SELECT count(*) FROM launch_event")).scalar_one()
                    )

            assert wait_until(lambda: count() == 2)
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT app_id, user_id FROM launch_event")).all()
                signins = conn.execute(sa.text("SELECT count(*) FROM signin_event")).scalar_one()
        finally:
            engine.dispose()
        assert sorted(r.app_id for r in rows) == ["teams", "time-tracking"]
        assert all(CLINICIAN.sub not in r.user_id and len(r.user_id) == 32 for r in rows)
        assert signins == 1

        csrf = grid.text.split('name="csrf_token" value="')[1].split('"')[0]
        out = client.post(f"{server.url}/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert "/_devidp/end-session" in out.headers["location"]
        assert client.get(f"{server.url}/").status_code == 303
