"""The baseline for bench_grid.py: a bare Starlette app whose one route answers a fixed page.

The page is the bytes of the portal's own grid page (the file named by ``BENCH_PAGE_FILE``),
served with the uvicorn options of ``launcher serve`` and the same number of workers, so that
the ratio between the two measures what the portal does to build the page and nothing else.

    BENCH_PAGE_FILE=page.html python bench/bare_page.py --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route


def build() -> Starlette:
    """Factory for uvicorn's workers: each reads the page once."""
    body = Path(os.environ["BENCH_PAGE_FILE"]).read_bytes()

    async def page(request: Request) -> Response:
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/", page)])


def main() -> None:
    import uvicorn

    from launcher.serve import uvicorn_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)  # the workers import this file as "bare_page"
    uvicorn.run(
        "bare_page:build",
        factory=True,
        app_dir=here,
        **uvicorn_options(args.host, args.port, args.workers),
    )


if __name__ == "__main__":
    main()
