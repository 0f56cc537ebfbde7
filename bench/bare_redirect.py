"""The baseline for bench_launch.py: a bare Starlette app whose one route answers 303.

Served exactly like ``launcher serve`` serves the portal (same uvicorn options), so that the
ratio between the two measures what the portal adds per launch and nothing else.

    python bench/bare_redirect.py --port 8001
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

TARGET = "https://teams.microsoft.com/?login_hint=sanne%40example.org"


async def launch(request: Request) -> Response:
    return RedirectResponse(TARGET, status_code=303, headers={"Cache-Control": "no-store"})


app = Starlette(routes=[Route("/launch/{app_id}", launch)])


def main() -> None:
    import uvicorn

    from launcher.serve import uvicorn_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, **uvicorn_options(args.host, args.port))


if __name__ == "__main__":
    main()
