"""Error responses in the shape each family of routes promises.

The native API answers ``{"detail": message, "code": code}`` (FastAPI's convention); the OpenAI-compatible
routes answer ``{"error": {"message", "type", "param", "code"}}``, which the ``openai`` client turns into
its exceptions with the message intact.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

OPENAI_PREFIX = "/v1/"

_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_response(
    path: str, status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if path.startswith(OPENAI_PREFIX):
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body: dict = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    else:
        body = {"detail": message, "code": code}
    return JSONResponse(body, status_code=status, headers=headers)


__all__ = ["OPENAI_PREFIX", "error_response"]
