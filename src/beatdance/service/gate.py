"""An ASGI gate in front of the service that refuses a request body as it arrives, not after.

Starlette reads a multipart body in full, spooling it to disk, before a route runs, so a size check in
the route comes after the damage. The gate answers 413 at once when Content-Length passes the limit;
otherwise (chunked or streamed bodies) it counts the bytes the app reads and answers 413 as soon as they
pass it. Either way the answer closes the connection, so the server reads nothing more of the body. A
``refuse`` hook may turn a request of a declared size within the limit away before its body is read (the
service: 503 when no worker could take an upload); that answer keeps the connection, so the server reads
and drops the rest of the body and the client, which may still be sending it, reads the answer cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Refusal:
    """An answer given instead of running the app: status, the JSON ``detail``, extra headers, and whether it
    closes the connection (so that the server reads no more of the request body)."""

    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = True

    async def send(self, send: Send) -> None:
        body = json.dumps({"detail": self.detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in self.headers.items()),
        ]
        if self.close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once the body passes the limit, so that it stops reading."""


class UploadGate:
    """Wrap ``app``: bodies over ``max_body_bytes`` get ``too_large`` (413); for a body of a declared size,
    ``refuse(scope)`` may answer first (it is sent without closing the connection)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        too_large: str,
        refuse: Callable[[Scope], Refusal | None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.too_large = Refusal(413, too_large)
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await self.too_large.send(send)
            return
        refusal = self.refuse(scope) if self.refuse is not None and length is not None else None
        if refusal is not None:
            await replace(refusal, close=False).send(send)
            return
        read = 0
        over = started = False

        async def counting_receive() -> Message:
            nonlocal read, over
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_body_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app's answer to the read that failed; the 413 replaces it
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self.too_large.send(send)


def _content_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when it has none (chunked) or it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
