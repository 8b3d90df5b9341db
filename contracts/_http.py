"""A minimal HTTP client for the verification kit: stdlib only, no redirects, no
decompression, so the kit sees exactly what the provider sends."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class HttpError(Exception):
    """No HTTP answer at all: refused, reset, timed out, not HTTP."""


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
    max_body: int = 1024 * 1024,
) -> Reply:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url!r}")
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    try:
        connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    except ValueError as exc:  # a port that is not a number
        raise HttpError(f"{url!r}: {exc}") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The socket's timeout bounds each read; this bounds the whole answer, however
    # slowly a provider trickles it.
    expired = threading.Event()
    timer = threading.Timer(timeout, _expire, (connection, expired))
    timer.daemon = True
    timer.start()
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read(max_body + 1)
        if expired.is_set():  # what was read before the cut is not the whole answer
            raise HttpError(f"no whole answer within {timeout:g} s")
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, data[: max_body + 1]
        )
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            raise HttpError(f"no whole answer within {timeout:g} s") from None
        raise HttpError(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        ) from None
    finally:
        timer.cancel()
        connection.close()


def _expire(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on it


def post_json(url: str, payload: object, *, timeout: float = 5.0) -> Reply:
    return request(
        "POST",
        url,
        headers={"Content-Type": "application/json"},
        body=json.dumps(payload).encode(),
        timeout=timeout,
    )
