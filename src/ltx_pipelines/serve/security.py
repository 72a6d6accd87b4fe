"""Who may use the server, and how much they may send.

* :class:`ApiKeyGuard` - with ``--api-key``, every route but the page's static files needs
  ``Authorization: Bearer <key>``. The page itself logs in once (``POST /api/login``) and then carries an
  HttpOnly, SameSite=Strict session cookie derived from the key, because an ``EventSource`` and a
  ``<video src>`` cannot send headers.
* :class:`BodySizeLimit` - a request body larger than the cap (``--max-upload-mb``) is refused with 413
  before it is stored anywhere, whether or not it declares its length.
* :class:`BrowserGuard` - refuses writes (POST, DELETE) that a page of another site makes (cross-site
  request forgery: browsers send ``Origin`` with them), and, when the server listens on a loopback address,
  requests whose ``Host`` is neither a loopback name nor one allowed with ``--allow-host`` (DNS
  rebinding). Cross-origin reads stay blocked by the browser unless ``--cors-origin`` allows an origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ltx_pipelines.serve.errors import error_response

SESSION_COOKIE = "ltx_session"
_bearer = HTTPBearer(auto_error=False, description="The key the server was started with (--api-key).")


class ApiKeyGuard:
    """A FastAPI dependency: passes when no key is set, or the request carries the key or the session."""

    def __init__(self, api_key: str | None):
        self.api_key = api_key

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)

    def session_token(self) -> str:
        """The page's session cookie: derived from the key, so restarting with another key logs pages out."""
        return hmac.new(self.api_key.encode(), b"ltx-pipelines-serve page session", hashlib.sha256).hexdigest()

    def key_matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.api_key.encode())

    def accepts(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> bool:
        if not self.enabled:
            return True
        if credentials is not None and self.key_matches(credentials.credentials):
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session_token().encode())

    def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> None:
        if not self.accepts(request, credentials):
            raise HTTPException(
                401, "This server needs its API key: send Authorization: Bearer <key>.",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Pure ASGI middleware: refuse request bodies over ``max_bytes`` with 413."""

    #: After refusing a declared-too-large body, read (and drop) up to this much of it, so that the client,
    #: still sending, reads our answer instead of a reset connection.
    drain_bytes = 64 << 20

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._drain(receive)
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:
                raise
            await self._drain(receive)
            await self._refuse(scope, receive, send)

    async def _drain(self, receive: Receive) -> None:
        dropped = 0
        while dropped < self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes / (1 << 20)
        message = f"The request is larger than this server accepts ({limit:g} MB, --max-upload-mb)."
        response = error_response(scope["path"], 413, message, "too_large", headers={"Connection": "close"})
        await response(scope, receive, send)


class BrowserGuard:
    """Pure ASGI middleware against cross-site writes and DNS rebinding (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, allowed_origins: set[str], loopback_only: bool, allowed_hosts: set[str] = frozenset()
    ):
        self.app = app
        self.allowed_origins = allowed_origins
        self.loopback_only = loopback_only
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(scope["path"], 403, refusal, "forbidden")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        host = _header(scope, b"host") or ""
        name = urlsplit(f"//{host}").hostname or ""
        if self.loopback_only and not (_is_loopback_name(host) or name in self.allowed_hosts):
            return (
                f"Host {host!r} is not this machine; the server listens on a loopback address only "
                "(a reverse proxy's public name can be allowed with --allow-host)."
            )
        origin = _header(scope, b"origin")
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and origin is not None:
            same_site = urlsplit(origin).netloc.lower() == host.lower()
            if not same_site and origin not in self.allowed_origins:
                return f"Requests from pages of {origin} are refused (allow the origin with --cors-origin)."
        return None


def _is_loopback_name(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_address(host: str) -> bool:
    """Whether ``--host`` is a loopback address (then only loopback Host headers are accepted)."""
    return _is_loopback_name(host if ":" not in host else f"[{host}]")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


__all__ = ["SESSION_COOKIE", "ApiKeyGuard", "BodySizeLimit", "BrowserGuard", "is_loopback_address"]
