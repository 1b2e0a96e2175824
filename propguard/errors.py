"""Error responses in the OpenStack JSON style, and the exceptions that carry them.

One error path: code that decides to answer instead of Glance raises, and the
filter's ``wsgify`` turns the exception into the response (both classes are
``webob.exc.HTTPException``). Messages only ever repeat what the caller sent
(the property name they asked for); never a stored value, never a name the
caller cannot read.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
import webob
import webob.exc


class ApiError(webob.exc.HTTPException):
    """Stop handling the request and answer with ``status`` and ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, error_response(status, message, headers))
        self.status = status
        self.message = message
        self.headers = headers or {}


class UpstreamAnswer(webob.exc.HTTPException):
    """Stop handling the request and pass on Glance's own answer unchanged.

    For an answer to a request propguard made itself (the image read before a
    PATCH, the probe of an emptied listing) that the caller would have had
    from Glance anyway: authentication, policy and validation errors.
    """

    def __init__(self, response: webob.Response) -> None:
        super().__init__(f"image service answered {response.status}", response)
        self.response = response


#: Glance's JSON could not be checked: never passed on unfiltered.
UNCHECKABLE = "The image service sent a response propguard cannot check."


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
