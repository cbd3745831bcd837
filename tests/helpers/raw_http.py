"""A raw HTTP/1.1 POST over a socket, for hostile-input tests: the body is sent by one thread while another
reads, so a server that answers early (413 while reading, 401 before the body) is seen answering, and how
many body bytes it took before it answered is known. urllib would block in sendall and report a broken pipe
instead of the status."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

CHUNK = 256 * 1024


@dataclass
class RawReply:
    status: int | None          # None: the connection closed without a status line
    body: bytes
    sent_bytes: int             # body bytes the server accepted before the exchange ended
    body_bytes: int             # body bytes the client meant to send
    elapsed_s: float            # request start -> response complete (or connection closed)
    error: str = ""             # the socket error that ended the exchange, if any

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _pieces(body: bytes | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(body, (bytes, bytearray)):
        view = memoryview(body)
        return (view[i:i + CHUNK] for i in range(0, len(body), CHUNK))
    return body


def post(host: str, port: int, path: str, body: bytes | Iterable[bytes], *, body_len: int | None = None,
         headers: dict[str, str] | None = None, chunked: bool = False, timeout: float = 60.0) -> RawReply:
    """POST `body` (bytes, or an iterable of pieces with `body_len` their total) and read the answer."""
    total = len(body) if isinstance(body, (bytes, bytearray)) else (body_len or 0)
    head = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
            "connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("transfer-encoding: chunked" if chunked else f"content-length: {total}")
    start = time.monotonic()
    sock = socket.create_connection((host, port), timeout=timeout)
    sent = [0]
    send_error = [""]

    def send() -> None:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            for piece in _pieces(body):
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
                sent[0] += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError as exc:       # the server answered and closed: expected for an early refusal
            send_error[0] = f"{type(exc).__name__}: {exc}"

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    error = ""
    try:
        data = _read_response(sock)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        elapsed = time.monotonic() - start
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        sender.join(timeout=10)
    status, payload = _parse(data)
    return RawReply(status, payload, sent[0], total, elapsed, error or (send_error[0] if status is None else ""))


def _read_response(sock: socket.socket) -> bytes:
    """Bytes up to the end of the response (Content-Length honoured; otherwise until the server closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while length is None or len(rest) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        rest += piece
    return head + b"\r\n\r\n" + rest


def _parse(data: bytes) -> tuple[int | None, bytes]:
    if not data.startswith(b"HTTP/"):
        return None, data
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), rest
    except (IndexError, ValueError):
        return None, data
