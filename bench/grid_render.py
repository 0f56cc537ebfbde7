"""What the grid costs the browser: the CPU time of Chromium's renderer main thread for one load
of the signed-in grid of 60 apps, by part (parsing, style, layout, paint, script, ...), beside
the same for a blank page from the same origin, measured in the same run.

    python bench/grid_render.py                 # 9 loads of each, interleaved
    python bench/grid_render.py --loads 15 --css static/style.css   # another stylesheet

Thread time (the trace's ``tdur``), not wall time: it does not grow with what else runs on the
machine, so two versions of the page compare on a busy machine, where the wall-clock figures
of tests/test_browser_grid.py (CPU throttled x4) drift with the load. The page is the one
bench_grid.py serves (its registry, person and history), fetched from ``launcher serve`` and
then served as it is, with its static files, by a plain file server (so a load costs the
server nothing, and ``--css`` can try another stylesheet on the same page). Each load comes
from a blank page of the same origin with the static files in the cache, as a ward PC that
opens the portal every day.
"""

from __future__ import annotations

import argparse
import collections
import functools
import http.server
import json
import os
import re
import socketserver
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
from bench_grid import _database, portal_env, registry_yaml, seed
from bench_launch import ISSUER, SECRET, _free_port, _mint_cookie, _start

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BLANK = '<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>Leeg</title></head><body><p>Leeg</p></body></html>'  # noqa: E501
# trace event name -> part; the rest of the main thread's time is the browser's own work of a
# navigation (committing it, loading from the cache, building the frame)
PARTS = {
    "ParseHTML": "parse",
    "UpdateLayoutTree": "style",
    "Layout": "layout",
    "PrePaint": "prepaint",
    "Paint": "paint",
    "EvaluateScript": "script",
    "FunctionCall": "script",
    "v8.compile": "script",
    "SVGImage::DataChanged": "svg images",
}
CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "toplevel", "blink"]


class Files(http.server.SimpleHTTPRequestHandler):
    """The saved page and its static files; the hashed files for a year, as the portal does."""

    def end_headers(self) -> None:
        immutable = self.path.startswith(("/static/", "/icons/"))
        self.send_header(
            "Cache-Control", "max-age=31536000, immutable" if immutable else "no-store"
        )
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def save_page(site: Path, db: str) -> None:
    """The signed-in grid from ``launcher serve``, with every file it loads."""
    tmp = site.parent
    base = f"http://127.0.0.1:{_free_port()}"
    apps_file = tmp / "apps.yaml"
    apps_file.write_text(registry_yaml(), encoding="utf-8")
    url, _ = _database(db, tmp)
    from launcher.auth.user import pseudonym
    from launcher.settings import load_settings

    settings = load_settings(secret_key=SECRET, base_url=base, oidc_issuer=ISSUER)
    seed(url, pseudonym(settings.pseudonym_secret(), ISSUER, "bench-user"))
    env = portal_env(base, url, apps_file, tmp)
    port = base.rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "launcher", "serve", "--port", port, "--workers", "1"]
    server = _start("portal", argv, f"{base}/", f"{base}/healthz", env, tmp)
    try:
        with httpx.Client(headers={"Cookie": _mint_cookie(base)}, timeout=10) as client:
            page = client.get(f"{base}/", headers={"Accept-Language": "nl"})
            if page.status_code != 200 or len(re.findall('class="tile( later)?"', page.text)) < 60:
                raise SystemExit(f"bench: not the signed-in grid ({page.status_code})")
            site.mkdir(parents=True)
            (site / "index.html").write_text(page.text, encoding="utf-8")
            for ref in set(re.findall(r'(?:src|href)="(/(?:static|icons)/[^"?]+)', page.text)):
                path = site / ref.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(client.get(f"{base}{ref}").content)
    finally:
        server.proc.terminate()
        server.proc.wait()
    (site / "blank.html").write_text(BLANK, encoding="utf-8")
    (site / "favicon.ico").write_bytes(b"")


def one_load(browser: Any, base: str, page_name: str) -> dict[str, float]:
    """Main-thread CPU ms of one load of PAGE_NAME, by part, after a blank page of the origin."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="nl-NL")
    try:
        page = context.new_page()
        page.goto(f"{base}/index.html", wait_until="load")  # the static files into the cache
        page.goto(f"{base}/blank.html", wait_until="load")
        browser.start_tracing(page=page, categories=CATEGORIES)
        page.goto(f"{base}/{page_name}", wait_until="load")
        page.wait_for_timeout(300)
        events = json.loads(browser.stop_tracing())["traceEvents"]
    finally:
        context.close()
    threads = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
               and e["args"]["name"] == "CrRendererMain"}  # fmt: skip
    mine = [e for e in events if (e["pid"], e["tid"]) in threads and e.get("ph") == "X"]
    parts: collections.Counter[str] = collections.Counter()
    for e in mine:
        if e["name"] == "ThreadControllerImpl::RunTask":
            parts["total"] += e.get("tdur", 0) / 1000
        elif e["name"] in PARTS:
            parts[PARTS[e["name"]]] += e.get("tdur", 0) / 1000
    return dict(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description="Renderer CPU of one load of the grid.")
    parser.add_argument("--loads", type=int, default=9)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--css", type=Path, help="serve this stylesheet instead of the portal's")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    site = Path(tempfile.mkdtemp(prefix="launcher-bench-render-")) / "site"
    save_page(site, args.db)
    if args.css:
        for css in site.glob("static/style*.css"):
            css.write_bytes(args.css.read_bytes())
    handler = functools.partial(Files, directory=str(site))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as files:
        threading.Thread(target=files.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{files.server_address[1]}"
        loads: dict[str, list[dict[str, float]]] = {"index.html": [], "blank.html": []}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for _ in range(args.loads):  # interleaved, so that drift touches both alike
                for name, runs in loads.items():
                    runs.append(one_load(browser, base, name))
            browser.close()
        files.shutdown()
    load = os.getloadavg()[0]
    html = (site / "index.html").stat().st_size
    print(f"renderer main-thread CPU per load, ms (median of {args.loads}); "
          f"page {html / 1024:.0f} KiB of HTML; load average {load:.1f}")  # fmt: skip
    medians = {
        name: {k: statistics.median(r.get(k, 0.0) for r in runs) for k in ["total", *sorted(
            set(PARTS.values()))]} for name, runs in loads.items()
    }  # fmt: skip
    width = max(len(k) for k in medians["index.html"])
    print(f"  {'':<{width}}  {'grid':>7}  {'blank':>7}")
    for key, value in medians["index.html"].items():
        print(f"  {key:<{width}}  {value:7.1f}  {medians['blank.html'][key]:7.1f}")
    own = medians["index.html"]["total"] - medians["blank.html"]["total"]
    print(f"  the grid's own: {own:.1f} ms of CPU; x4 (the tests' throttling): {4 * own:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
