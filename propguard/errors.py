"""Error responses in the OpenStack JSON style, and the exception that carries them.

Messages only ever repeat what the caller sent (the property name they asked
for); never a stored value, never a name the caller cannot read.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
import webob


class ApiError(Exception):
    """Stop handling the request and answer with ``status`` and ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> webob.Response:
    """``{"error": {"code", "title", "message"}}``, as keystonemiddleware and Glance's API use."""
    title = HTTPStatus(status).phrase
    body = orjson.dumps({"error": {"code": status, "title": title, "message": message}})
    response = webob.Response(
        body=body, status=status, content_type="application/json", charset=None
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def forbidden_property(name: str) -> ApiError:
    """Glance's wording for a property the caller may see but not change (403)."""
    return ApiError(403, f"Attribute '{name}' is reserved.")


def missing_property(name: str) -> ApiError:
    """Glance's wording for a property the caller cannot see (409), existing or not."""
    return ApiError(409, f"Property {name} does not exist.")
