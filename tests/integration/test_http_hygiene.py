"""HTTP/1.1 hygiene of the gateway's own protocol (gateway.server), over raw sockets against a
real process: bounded request heads (size and time), request smuggling shapes refused,
pipelining answered in order, keep-alive."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from gateway.server.protocol import HEAD_TIMEOUT
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

PUBLISH = b"POST /publish/hyg HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(redis_server.url).start()
    yield gateway
    gateway.stop()


def _connect(gateway: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def _responses(sock: socket.socket, count: int) -> list[tuple[int, bytes, bytes]]:
    """Read ``count`` responses with a Content-Length: (status, head, body) each."""
    data, out = b"", []
    while len(out) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = _content_length(head)
            if len(rest) >= length:
                out.append((int(head.split(b" ", 2)[1]), head, rest[:length]))
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return out


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _until_closed(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"still open; read {data[:200]!r}")


def _publish(body: bytes, extra: bytes = b"") -> bytes:
    return PUBLISH + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_head_trickling_in_one_byte_a_second_is_cut_off(server):
    started = time.monotonic()
    with _connect(server) as sock:
        sock.settimeout(1.0)
        answer = b""
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer or time.monotonic() - started > HEAD_TIMEOUT + 5:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < HEAD_TIMEOUT + 3
        assert _until_closed(sock, time.monotonic() + 5) is not None


def test_a_1mib_header_line_gets_431_not_200(server):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    with _connect(server) as sock:
        with contextlib.suppress(OSError):  # the server answered and stopped reading
            sock.sendall(head)
        answer = _until_closed(sock, time.monotonic() + 10)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b'"error":"head_too_large"' in answer


def test_content_length_with_transfer_encoding_is_refused(server):
    body = b'{"a":1}'
    request = _publish(body, b"Transfer-Encoding: chunked\r\n")
    with _connect(server) as sock:
        sock.sendall(request)
        answer = _until_closed(sock, time.monotonic() + 10)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


@pytest.mark.parametrize(
    "order", [(b"application/json", b"text/plain"), (b"text/plain", b"application/json")]
)
def test_a_repeated_content_type_is_refused_in_either_order(server, order):
    body = b'{"a":1}'
    head = b"POST /publish/hyg HTTP/1.1\r\nHost: x\r\n"
    head += b"".join(b"Content-Type: %b\r\n" % value for value in order)
    with _connect(server) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        answer = _until_closed(sock, time.monotonic() + 10)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"Content-Type" in answer


def test_pipelined_requests_are_answered_in_order_on_one_connection(server):
    requests = [
        _publish(b'{"n":1}'),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        _publish(b'{"n":2}'),
        b"GET /publish/hyg HTTP/1.1\r\nHost: x\r\n\r\n",  # the app's 405, between hot requests
        _publish(b'{"n":3}'),
    ]
    with _connect(server) as sock:
        sock.sendall(b"".join(requests))
        answers = _responses(sock, len(requests))
    assert [status for status, _, _ in answers] == [202, 200, 202, 405, 202]
    ids = [body for status, _, body in answers if status == 202]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_keep_alive_serves_requests_one_after_another(server):
    with _connect(server) as sock:
        for n in range(3):
            sock.sendall(_publish(b'{"k":%d}' % n))
            [(status, head, _)] = _responses(sock, 1)
            assert status == 202 and b"connection: close" not in head.lower()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = _until_closed(sock, time.monotonic() + 10)
    assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer


def test_an_oversized_upload_gets_its_413_whole_while_the_body_keeps_coming(server):
    """A 413 decided from Content-Length goes out at once; the rest of the body is read and
    dropped, so the client can finish sending and read the answer (closing on it would reset
    the connection, and the client would see a broken pipe instead: a 4 MiB body exceeds every
    socket buffer on the way)."""
    body = b'"' + b"x" * (4 << 20) + b'"'
    with _connect(server) as sock:
        sock.sendall(_publish(body))  # raises BrokenPipeError/ConnectionResetError if cut off
        [(status, _, answer)] = _responses(sock, 1)
        assert status == 413 and b"body_too_large" in answer
        sock.sendall(_publish(b'{"after":1}'))  # and the connection is still good for more
        [(status, _, _)] = _responses(sock, 1)
    assert status == 202
