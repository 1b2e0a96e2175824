"""propguard's ``request_id`` behaves as oslo.middleware's ``RequestId`` (compared with it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from oslo_middleware import RequestId as OsloRequestId

from propguard.proxy.request_id import RequestId

GLOBAL = "req-0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"


def run(middleware_class: Any, environ: dict[str, Any], answer: list[tuple[str, str]],
        body: list[bytes], **conf: Any) -> tuple[dict[str, Any], str, list[tuple[str, str]], bytes]:  # fmt: skip
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        start_response("200 OK", list(answer))
        return body

    started: list[Any] = []
    middleware = middleware_class.factory({}, **conf)(app)
    out = b"".join(middleware(dict(environ), lambda s, h, e=None: started.append((s, h))))
    status, headers = started[0]
    return seen, status, headers, out


def environ(**extra: Any) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v2/images",
        "SERVER_NAME": "proxy",
        "SERVER_PORT": "9293",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "proxy:9293",
        **extra,
    }


def same_shape(ours: list[tuple[str, str]], theirs: list[tuple[str, str]], rid: str) -> None:
    """Equal header lists, the generated id aside (each run makes its own)."""
    assert [(n, rid if v == rid else v) for n, v in ours] == [
        (n, rid if re.fullmatch(r"req-[0-9a-f-]{36}", v) and v != GLOBAL else v) for n, v in theirs
    ]


@pytest.mark.parametrize(
    "inbound",
    [None, GLOBAL, GLOBAL.upper(), "req-not-an-id", GLOBAL + "x", GLOBAL + "\n", ""],
)
@pytest.mark.parametrize(
    "answer",
    [
        [("Content-Type", "application/json")],
        [("Content-Type", "application/json"), ("X-OpenStack-Request-ID", "req-glance")],
        [("x-openstack-request-id", "req-glance"), ("Content-Length", "2")],
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_same_environ_and_answer_as_oslo(inbound: str | None, answer: list, method: str) -> None:
    extra = {"REQUEST_METHOD": method}
    if inbound is not None:
        extra["HTTP_X_OPENSTACK_REQUEST_ID"] = inbound
    ours = run(RequestId, environ(**extra), answer, [b"{}"])
    theirs = run(OsloRequestId, environ(**extra), answer, [b"{}"])
    rid = ours[0]["openstack.request_id"]
    assert re.fullmatch(r"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", rid)
    assert re.fullmatch(r"req-[0-9a-f-]{36}", theirs[0]["openstack.request_id"])
    assert ours[0].get("openstack.global_request_id") == theirs[0].get(
        "openstack.global_request_id"
    )
    assert ours[1] == theirs[1]
    same_shape(ours[2], theirs[2], rid)
    # webob drops a HEAD answer's body; gunicorn drops it too (no body on HEAD)
    assert ours[3] == b"{}" and theirs[3] == (b"" if method == "HEAD" else b"{}")


def test_compat_headers_are_added_as_oslo_adds_them() -> None:
    class Compat(RequestId):
        compat_headers = ["x-compute-request-id"]

    class OsloCompat(OsloRequestId):
        compat_headers = ["x-compute-request-id"]

    answer = [("X-Compute-Request-Id", "req-nova")]
    ours = run(Compat, environ(), answer, [b""])
    theirs = run(OsloCompat, environ(), answer, [b""])
    same_shape(ours[2], theirs[2], ours[0]["openstack.request_id"])
    assert [n for n, _ in ours[2]] == ["X-Compute-Request-Id", "x-openstack-request-id"]


def test_the_body_iterator_is_passed_through_unread() -> None:
    """Not collected as webob does: a streamed download stays streamed."""
    pieces = iter([b"a", b"b"])

    def app(env: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return pieces

    assert RequestId.factory({})(app)(environ(), lambda s, h, e=None: None) is pieces
