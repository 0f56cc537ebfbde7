"""deploy/kubernetes/base/fetch-signins.py, the placeholder export of the import-signins CronJob,
against a stand-in for Microsoft Graph on loopback: token, paging, one record per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "deploy/kubernetes/base/fetch-signins.py"
PAGES = {
    "/v1.0/auditLogs/signIns": [{"id": "a", "appId": "teams"}, {"id": "b", "appId": "ehr"}],
    "/page-2": [{"id": "c", "appId": "teams"}],
}


class _Graph(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, body: object, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        assert self.path == "/tenant-1/oauth2/v2.0/token"
        assert form["grant_type"] == ["client_credentials"] and form["client_secret"] == ["s3"]
        self._json({"access_token": "token-1", "token_type": "Bearer"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != "Bearer token-1":
            self._json({"error": "unauthorized"}, 401)
            return
        page: dict[str, object] = {"value": PAGES[url.path]}
        if url.path != "/page-2":
            page["@odata.nextLink"] = f"http://{self.headers['Host']}/page-2"
        self._json(page)


@pytest.fixture
def graph() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Graph)
    _Graph.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(graph: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GRAPH_LOGIN_URL": graph,
        "GRAPH_API_URL": graph,
        "GRAPH_TENANT_ID": "tenant-1",
        "GRAPH_CLIENT_ID": "client-1",
        "GRAPH_CLIENT_SECRET": "s3",
        "SIGNINS_FILE": str(out),
        "SIGNINS_SINCE_HOURS": "26",
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def test_pages_through_the_sign_in_log_into_json_lines(graph: str, tmp_path: Path) -> None:
    out = tmp_path / "signins.jsonl"
    done = _run(graph, out)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b", "c"]
    first, second = _Graph.seen
    query = parse_qs(urlsplit(first[0]).query)
    assert query["$filter"][0].startswith("createdDateTime ge ")
    assert second[0] == "/page-2" and second[1] == "Bearer token-1"
    assert "3 sign-ins" in done.stdout
    assert not list(tmp_path.glob("*.part"))


def test_a_page_without_records_fails_and_leaves_no_export(graph: str, tmp_path: Path) -> None:
    out = tmp_path / "signins.jsonl"
    PAGES["/page-2"], saved = None, PAGES["/page-2"]  # type: ignore[assignment]
    try:
        done = _run(graph, out)
    finally:
        PAGES["/page-2"] = saved
    assert done.returncode == 1 and "no 'value' list" in done.stderr
    assert not out.exists()  # the import never reads half an export
