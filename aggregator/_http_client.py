"""The production transport: aiohttp's client, pooled, capped and without surprises."""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Mapping
from types import TracebackType

import aiohttp
from yarl import URL

from contracts import ErrorKind, Outcome, content_encoding

from ._log_budget import LogBudget
from ._transport import OutboundRequest, TransportFailure, TransportResponse

log = logging.getLogger("aggregator.client")


class AiohttpTransport:
    """The production transport: one pooled ``aiohttp.ClientSession``.

    Redirects are not followed, cookies are never stored, bodies are not
    decompressed (we ask for ``identity``; an encoded one is not read at all) and
    are read up to a byte cap.

    Example::

        async with AiohttpTransport() as transport:
            reply = await transport(OutboundRequest(url=url, headers={}, max_body_bytes=262_144))

    It does not bound a call's time: the aggregator does, around it (or wrap a
    call in ``asyncio.timeout``).
    """

    def __init__(self, *, connection_limit: int = 256) -> None:
        self._connection_limit = connection_limit
        # A failing participant fails every call: its lines are budgeted per transport.
        self._log_budget = LogBudget(burst=20, window=10.0)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpTransport:
        self._session = aiohttp.ClientSession(
            # No cap per host beside the total: participants sharing a host each have
            # their own bulkhead, and the total is sized to hold them all.
            connector=aiohttp.TCPConnector(limit=self._connection_limit, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            # The pipeline bounds each call with one timer of its own, cheaper than
            # aiohttp's (_protection).
            timeout=aiohttp.ClientTimeout(total=None),
        )
        # aiohttp retries an idempotent request once by itself when the connection
        # breaks, outside our retry budget: a participant resetting every connection
        # would get two calls for each of ours. Retries are ours alone to make
        # (_protection); aiohttp has no public switch for this, its own test
        # client turns it off the same way (aiohttp issue #10790).
        self._session._retry_connection = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def is_open(self) -> bool:
        return self._session is not None and not self._session.closed

    async def __call__(self, request: OutboundRequest) -> TransportResponse | TransportFailure:
        if self._session is None:
            raise RuntimeError("AiohttpTransport used outside 'async with'")
        return await self._exchange(self._session, request)

    async def _exchange(
        self, session: aiohttp.ClientSession, request: OutboundRequest
    ) -> TransportResponse | TransportFailure:
        try:
            async with session.get(
                URL(request.url, encoded=True),
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                headers = _joined(response.headers)
                if content_encoding(headers) is not None:
                    # We asked for identity and never decompress: the body is useless,
                    # so it is not read (however large), and the parser refuses the
                    # answer for its encoding.
                    return TransportResponse(response.status, headers, b"")
                limit = request.max_body_bytes
                length = response.content_length
                if length is not None and length > limit:
                    return _too_large(limit)
                chunks: list[bytes] = []
                size = 0
                while chunk := await response.content.read(limit + 1 - size):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        return _too_large(limit)
                body = b"".join(chunks)
                return TransportResponse(response.status, headers, body)
        except aiohttp.ClientConnectorError as exc:
            return self._failed(request, exc, f"cannot connect: {_reason(exc.os_error)}", True)
        except aiohttp.ServerDisconnectedError as exc:
            return self._failed(request, exc, "connection closed before an answer", True)
        except aiohttp.ClientResponseError as exc:
            return self._failed(
                request,
                exc,
                "malformed HTTP answer",
                False,
                outcome=Outcome.INVALID,
                kind=ErrorKind.UNEXPECTED_RESPONSE,
            )
        except aiohttp.ClientPayloadError as exc:
            return self._failed(request, exc, "connection broken while reading the body", False)
        except aiohttp.ClientOSError as exc:
            # Reset before the answer's body: our calls are GETs, safe to send again.
            return self._failed(request, exc, f"connection lost: {_reason(exc)}", True)
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed(request, exc, "connection error", False)

    def _failed(
        self,
        request: OutboundRequest,
        exc: BaseException,
        detail: str,
        retryable: bool,
        *,
        outcome: Outcome = Outcome.UNAVAILABLE,
        kind: ErrorKind = ErrorKind.CONNECTION,
    ) -> TransportFailure:
        """A failure as callers see it; the operator's log keeps the full detail (the
        gateway's log lines carry the request id), 20 lines in 10 s at most."""
        left_out = self._log_budget.take()
        if left_out is not None:
            more = f" ({left_out} more failed calls not logged)" if left_out else ""
            log.warning("GET %s: %s (%s: %s)%s", request.url, detail, type(exc).__name__, exc, more)
        return TransportFailure(outcome, kind, detail, retryable)


def _reason(error: OSError) -> str:
    """Why a connection failed, in words that name no address, port or host: the
    error's own text often does ("Connect call failed ('10.0.0.7', 8080)")."""
    if isinstance(error, socket.gaierror):
        return "host name not resolved"
    if isinstance(error, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(error, TimeoutError):
        return "timed out"
    if error.errno:
        return os.strerror(error.errno).lower()
    return "connection failed"


def _joined(headers: Mapping[str, str]) -> dict[str, str]:
    """Names in lower case; a field sent on several lines as one, joined by commas
    (RFC 9110 5.3), so no line of a repeated ``Cache-Control`` is lost."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        held = joined.get(name)
        joined[name] = value if held is None else f"{held}, {value}"
    return joined


def _too_large(limit: int) -> TransportFailure:
    return TransportFailure(
        Outcome.INVALID, ErrorKind.BODY_TOO_LARGE, f"body larger than {limit} bytes"
    )
