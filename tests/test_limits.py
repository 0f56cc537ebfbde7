"""Request bodies are capped per route (413) and limited to the content types a route takes
(415), by Content-Length and while a chunked body streams in, before anything is parsed."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from launcher.app import create_app
from launcher.settings import Settings
from tests.conftest import LiveServer, free_port
from tests.helpers import InProcess, bare_portal

FORM = "application/x-www-form-urlencoded"


def _form_of(size: int) -> bytes:
    body = b"logout_token=" + b"a" * size
    return body[:size]


@pytest.fixture
def portal(make_settings: Callable[..., Settings], sqlite_url: str) -> Iterator[InProcess]:
    with bare_portal(make_settings(database_url=sqlite_url)) as portal:
        yield portal


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "size"),
    [
        pytest.param("/auth/backchannel-logout", 8 * 1024 + 1, id="back-channel over 8 KB"),
        pytest.param("/auth/backchannel-logout", 200 * 1024 * 1024, id="back-channel 200 MB"),
        pytest.param("/requests", 64 * 1024 + 1, id="a form over 64 KB"),
        pytest.param("/logout", 1024 * 1024, id="sign-out with 1 MB"),
    ],
)
async def test_body_over_the_cap_by_content_length_is_413(
    portal: InProcess, path: str, size: int
) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"a" * 65536
        while sent < size:
            piece = chunk[: size - sent]
            sent += len(piece)
            yield piece

    headers = {"Content-Type": FORM, "Content-Length": str(size)}
    async with portal.aclient() as client:
        resp = await client.post(path, content=body(), headers=headers)
    assert resp.status_code == 413, resp.text[:300]
    assert sent <= 65536  # answered from the header: the body was never read


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "cap"),
    [
        pytest.param("/auth/backchannel-logout", 8 * 1024, id="back-channel"),
        pytest.param("/requests", 64 * 1024, id="a signed-in form"),
    ],
)
async def test_chunked_body_is_cut_off_at_the_cap(portal: InProcess, path: str, cap: int) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"name="
        while sent < 50 * 1024 * 1024:  # 50 MB if nobody stopped reading
            sent += 1024
            yield b"x" * 1024

    async with portal.aclient() as client:
        portal.sign_in(client, portal.session())
        resp = await client.post(path, content=body(), headers={"Content-Type": FORM})
    assert resp.status_code == 413, resp.text[:300]
    assert cap <= sent <= cap + 2 * 1024  # read up to the cap, not a chunk further


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        pytest.param("/auth/backchannel-logout", "multipart/form-data; boundary=x", id="multipart"),
        pytest.param("/auth/backchannel-logout", "application/json", id="json"),
        pytest.param("/requests", "text/plain", id="text"),
        pytest.param("/favourites/teams", "multipart/form-data; boundary=x", id="multipart form"),
        pytest.param("/logout", None, id="no content type"),
    ],
)
async def test_content_types_a_route_does_not_take_are_415(
    portal: InProcess, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with portal.aclient() as client:
        portal.sign_in(client, portal.session())
        resp = await client.post(path, content=b"--x\r\n\r\n", headers=headers)
    assert resp.status_code == 415, resp.text[:300]


@pytest.mark.anyio
async def test_forms_within_the_cap_still_work(portal: InProcess) -> None:
    """The control: ordinary posts of each route reach their handlers."""
    async with portal.aclient() as client:
        # a junk logout token is a 400 from the handler, not a 413/415 from the cap
        resp = await client.post("/auth/backchannel-logout", data={"logout_token": "x" * 4000})
        assert resp.status_code == 400
        assert resp.json() == {"error": "invalid_request"}
        # a form with the charset parameter browsers may add, at nearly 64 KB
        portal.sign_in(client, portal.session())
        resp = await client.post(
            "/requests",
            content=_form_of(60 * 1024),
            headers={"Content-Type": f"{FORM}; charset=UTF-8"},
        )
        assert resp.status_code == 403  # the handler ran: no CSRF token in this form
        empty = await client.post("/logout", headers={"Content-Length": "0"})
        assert empty.status_code == 403  # no body, no content type needed: the CSRF check ran


def test_uvicorn_answers_413_without_reading_the_body(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    """On the wire: a client announcing 200 MB gets its 413 after sending the headers only."""
    port = free_port()
    settings = make_settings(database_url=sqlite_url, base_url=f"http://127.0.0.1:{port}")
    with LiveServer(create_app(settings), port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /auth/backchannel-logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 209715200\r\n\r\nlogout_token="
            )
            head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        with httpx.Client() as client:  # and the server is fine afterwards
            assert client.get(f"http://127.0.0.1:{port}/healthz").text == "ok"
