"""The load generator's HTTP/1.1 client against a real socket server: keep-alive answers by
Content-Length, chunked answers, a server that closes after answering, and one that closes
without answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.rawhttp import Connection, HttpError

ANSWERS = {
    b"/length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Total-Count: 7\r\n\r\nhello",
    b"/chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"
    ),
    b"/close": b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Answers each request by its path; ``/drop`` closes the connection without answering.
    Yields the base URL and the request lines seen, one list entry per connection opened."""
    connections: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(b"")
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].split(b"?")[0].removeprefix(b"/base")
                connections[-1] += head.split(b"\r\n")[0] + b";"
                if path == b"/drop":
                    break
                writer.write(ANSWERS[path])
                await writer.drain()
                if path == b"/close":
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/base", connections
    finally:
        listening.close()
        await listening.wait_closed()


async def test_answers_on_one_kept_alive_connection(server: tuple[str, list[bytes]]) -> None:
    url, connections = server
    client = Connection(url, {"Authorization": "Token abc"})
    try:
        first = await client.get(client.request("/length", {"offset": 100, "limit": 10}))
        assert (first.status, first.body, first.headers["x-total-count"]) == (200, b"hello", "7")
        chunked = await client.get(client.request("/chunked"))
        assert (chunked.status, chunked.body) == (200, b"abcdefg")
        assert connections == [
            b"GET /base/length?offset=100&limit=10 HTTP/1.1;GET /base/chunked HTTP/1.1;"
        ]
    finally:
        await client.close()


async def test_a_closed_connection_is_opened_again(server: tuple[str, list[bytes]]) -> None:
    url, connections = server
    client = Connection(url, {})
    try:
        closing = await client.get(client.request("/close"))
        assert (closing.status, closing.body) == (404, b"no")
        assert (await client.get(client.request("/length"))).body == b"hello"
        with pytest.raises(HttpError, match="closed before the answer"):
            await client.get(client.request("/drop"))
        assert (await client.get(client.request("/length"))).body == b"hello"
        assert len(connections) == 3
    finally:
        await client.close()


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="only http"):
        Connection("https://127.0.0.1:1/", {})
