"""The package as users install it: every package named in pyproject.toml, and the built wheel
(not an editable install) rendering the grid with the templates and static files it carries."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_named_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    named = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "launcher").rglob("__init__.py")
    }
    assert found - named == set(), "packages missing from [tool.setuptools] packages"
    for package, folder in config["package-dir"].items():
        assert package in named
        assert (ROOT / folder).is_dir(), f"{package} maps to a missing folder {folder}"


_RENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from starlette.testclient import TestClient

    import launcher
    from launcher.app import create_app
    from launcher.auth.user import User
    from launcher.settings import load_settings

    work = Path(sys.argv[1])
    settings = load_settings(
        secret_key="wheel-test-secret-key-that-is-long-enough-0123",
        oidc_issuer="https://idp.example.org",
        oidc_client_id="launcher",
        oidc_client_secret="secret",
        database_url=f"sqlite:///{work}/launcher.db",
        apps_file=Path(sys.argv[2]),
        spool_dir=work / "spool",
    )
    app = create_app(settings, migrate=True)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        context = app.state.context
        user = User(user_id="u1", sub="s1", name="Wheel Test", groups=("staff",))
        cookie = context.sessions.dumps(context.sessions.new(user, None))
        client.cookies.set(settings.session_cookie, cookie)
        page = client.get("/")
        assert page.status_code == 200, page.status_code
        assert 'href="/launch/teams"' in page.text
        assert 'name="csrf_token"' in page.text
        assert client.get("/static/style.css").status_code == 200
        assert client.get("/icons/teams.svg").status_code == 200
        # Dutch from the compiled catalogue the build put beside the .po
        client.cookies.set("launcher_lang", "nl")
        assert "Uitloggen" in client.get("/").text
    from launcher import i18n
    assert (i18n.LOCALE_DIR / "nl" / "LC_MESSAGES" / "messages.mo").is_file()
    print(launcher.__file__)
    """
)


def test_built_wheel_renders_the_grid(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("launcher-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # the catalogues as edited and as compiled
        shipped = {name for name in archive.namelist() if "/LC_MESSAGES/" in name}
    assert shipped == {f"launcher/locale/nl/LC_MESSAGES/messages.{kind}" for kind in ("po", "mo")}
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The wheel itself, not editable; its dependencies from this interpreter's site-packages
    # (a path in a .pth file: .pth files there, such as an editable install's, are not run).
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [python, "-c", _RENDER, work, ROOT / "config" / "apps.yaml"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    installed = Path(result.stdout.strip().splitlines()[-1])
    assert installed.is_relative_to(site), installed
    assert (installed.parent / "templates" / "portal.html").is_file()
