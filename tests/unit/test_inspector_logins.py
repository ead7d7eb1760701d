"""The inspector's data-store logins (pipeline/inspector.py) against tiny fake servers.

Each fake server runs in a thread on 127.0.0.1, takes one connection, plays its part of the
PostgreSQL or Redis protocol and keeps what the client sent, so a test can check both what
the inspector concluded and what it said on the wire.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from pipeline import inspector

PROTOCOL_3 = 196608
AUTHENTICATION_OK, CLEARTEXT, MD5, SASL, SASL_CONTINUE = 0, 3, 5, 10, 11
SERVER_NONCE = b"3rfcNHYJY1ZVvWVs7j"
SALT = base64.b64encode(b"pepper-and-salt!")


class FakeServer:
    """Accepts one connection on 127.0.0.1 and runs `script(connection, received)` on it."""

    def __init__(self, script: Callable[[socket.socket, list], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self.thread.start()

    def _serve(self, script) -> None:
        try:
            self.listener.settimeout(5)
            connection, _ = self.listener.accept()
            with connection:
                connection.settimeout(5)
                script(connection, self.received)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
        finally:
            self.listener.close()

    def finish(self) -> None:
        self.thread.join(5)
        assert not self.thread.is_alive(), "expected the fake server done, found it still running"
        assert self.error is None, (
            f"expected the fake server to play its part, found {self.error!r}"
        )


@pytest.fixture
def serve() -> Iterator[Callable[[Callable], FakeServer]]:
    servers: list[FakeServer] = []

    def start(script: Callable) -> FakeServer:
        servers.append(FakeServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.finish()


def receive(connection: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
    return data


def read_startup(connection: socket.socket) -> bytes:
    length = struct.unpack("!I", receive(connection, 4))[0]
    return receive(connection, length - 4)


def read_message(connection: socket.socket) -> tuple[bytes, bytes]:
    header = receive(connection, 5)
    return header[:1], receive(connection, struct.unpack("!I", header[1:])[0] - 4)


def send(connection: socket.socket, kind: bytes, body: bytes) -> None:
    connection.sendall(kind + struct.pack("!I", len(body) + 4) + body)


def authentication(method: int, data: bytes = b"") -> bytes:
    return struct.pack("!I", method) + data


def error_response(sqlstate: str) -> bytes:
    return (
        b"SFATAL\0VFATAL\0C" + sqlstate.encode() + b'\0Mpassword authentication failed for user "'
        b'dashtam"\0Fauth.c\0L323\0Rauth_failed\0\0'
    )


# ---------------------------------------------------------------- PostgreSQL


def test_a_server_that_trusts_everyone_is_accepted(serve):
    def trust(connection, received):
        received.append(read_startup(connection))
        send(connection, b"R", authentication(AUTHENTICATION_OK))

    server = serve(trust)
    found = inspector.postgres_login("dashtam", None, port=server.port)
    server.finish()
    assert found == "accepted", f"expected accepted on AuthenticationOk, found {found!r}"
    startup = struct.pack("!I", PROTOCOL_3) + b"user\0dashtam\0database\0postgres\0\0"
    assert server.received == [startup], (
        f"expected a protocol 3.0 startup for dashtam on postgres, found {server.received}"
    )


@pytest.mark.parametrize(
    "method",
    [CLEARTEXT, MD5, SASL],
    ids=["a cleartext request", "an md5 request", "a SCRAM request"],
)
def test_without_a_password_the_request_for_one_is_the_answer(serve, method):
    salt = b"\x01\x02\x03\x04" if method == MD5 else b""
    mechanisms = b"SCRAM-SHA-256\0\0" if method == SASL else b""

    def ask(connection, received):
        read_startup(connection)
        send(connection, b"R", authentication(method, salt + mechanisms))

    server = serve(ask)
    found = inspector.postgres_login("dashtam", None, port=server.port)
    assert found == "password requested", f"method {method}: expected it, found {found!r}"


def test_a_wrong_scram_proof_is_refused_with_28P01(serve):
    def scram(connection, received):
        read_startup(connection)
        send(connection, b"R", authentication(SASL, b"SCRAM-SHA-256\0\0"))
        kind, body = read_message(connection)
        mechanism, rest = body.split(b"\0", 1)
        length = struct.unpack("!I", rest[:4])[0]
        client_first = rest[4 : 4 + length]
        received.append((kind, mechanism, client_first))
        client_nonce = client_first.split(b"r=", 1)[1]
        server_first = b"r=" + client_nonce + SERVER_NONCE + b",s=" + SALT + b",i=4096"
        send(connection, b"R", authentication(SASL_CONTINUE, server_first))
        received.append(read_message(connection))
        send(connection, b"E", error_response("28P01"))

    server = serve(scram)
    found = inspector.postgres_login("dashtam", "not-the-password", port=server.port)
    server.finish()
    assert found == "refused: 28P01", f"expected the server's SQLSTATE, found {found!r}"
    (kind, mechanism, client_first), (final_kind, client_final) = server.received
    assert (kind, mechanism) == (b"p", b"SCRAM-SHA-256"), (
        f"expected a SASLInitialResponse for SCRAM-SHA-256, found {kind!r} {mechanism!r}"
    )
    assert client_first.startswith(b"n,,n=,r="), f"expected a client-first, found {client_first}"
    nonce = client_first.removeprefix(b"n,,n=,r=") + SERVER_NONCE
    assert final_kind == b"p" and client_final.startswith(b"c=biws,r=" + nonce + b",p="), (
        f"expected a client-final with the joint nonce and a proof, found {client_final!r}"
    )


def test_a_wrong_md5_answer_is_refused_with_28P01(serve):
    def md5(connection, received):
        read_startup(connection)
        send(connection, b"R", authentication(MD5, b"\x01\x02\x03\x04"))
        received.append(read_message(connection))
        send(connection, b"E", error_response("28P01"))

    server = serve(md5)
    found = inspector.postgres_login("dashtam", "wrong", port=server.port)
    server.finish()
    assert found == "refused: 28P01", f"expected the server's SQLSTATE, found {found!r}"
    assert server.received == [(b"p", b"wrong\0")], (
        f"expected the wrong password sent as a PasswordMessage, found {server.received}"
    )


def test_a_server_that_refuses_before_asking_gives_its_sqlstate(serve):
    def no_entry(connection, received):
        read_startup(connection)
        send(connection, b"E", error_response("28000"))  # no pg_hba.conf entry

    server = serve(no_entry)
    found = inspector.postgres_login("dashtam", None, port=server.port)
    assert found == "refused: 28000", f"expected refused: 28000, found {found!r}"


def test_messages_other_than_authentication_are_read_past(serve):
    def notice_first(connection, received):
        read_startup(connection)
        send(connection, b"N", b"SNOTICE\0C00000\0Mwelcome\0\0")
        send(connection, b"R", authentication(CLEARTEXT))

    server = serve(notice_first)
    found = inspector.postgres_login("dashtam", None, port=server.port)
    assert found == "password requested", f"expected the notice skipped, found {found!r}"


def test_an_unknown_authentication_method_is_named(serve):
    def gss(connection, received):
        read_startup(connection)
        send(connection, b"R", authentication(7))

    server = serve(gss)
    found = inspector.postgres_login("dashtam", "wrong", port=server.port)
    assert found == "unknown authentication method 7", f"expected method 7 named, found {found!r}"


def test_a_server_that_hangs_up_is_no_answer(serve):
    def hang_up(connection, received):
        read_startup(connection)

    server = serve(hang_up)
    found = inspector._tried(inspector.postgres_login, "dashtam", None, server.port)
    assert found == "no answer: the server closed the connection", (
        f"expected no answer, found {found!r}"
    )


def test_nothing_listening_is_no_answer():
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    found = inspector._tried(inspector.redis_unauthenticated, port)
    assert found.startswith("no answer: "), f"expected no answer on a closed port, found {found!r}"


# ---------------------------------------------------------------- Redis


@pytest.mark.parametrize(
    "reply",
    ["-NOAUTH Authentication required.", "+PONG"],
    ids=["a server that wants a password says NOAUTH", "an open server says PONG"],
)
def test_redis_gives_its_first_reply_line_to_a_ping(serve, reply):
    def redis(connection, received):
        received.append(receive(connection, len(b"PING\r\n")))
        connection.sendall(reply.encode() + b"\r\n")

    server = serve(redis)
    found = inspector.redis_unauthenticated(port=server.port)
    server.finish()
    assert found == reply, f"expected {reply!r}, found {found!r}"
    assert server.received == [b"PING\r\n"], f"expected an inline PING, found {server.received}"
