"""The canonical request target (propguard.glance.request): one table, RFC 3986 and Glance's rules."""

from __future__ import annotations

import pytest

from propguard.errors import ApiError
from propguard.glance.request import canonical, remove_dot_segments

VND = "application/vnd.openstack.images-"
ID = "0b7e0fd2-5a0f-4a4c-9a5e-7f0c1e5a9a11"

#: (PATH_INFO as the server decoded it, Accept, canonical path, propguard route)
CANONICAL = [
    (f"/v2/images/{ID}", None, f"/v2/images/{ID}", "image"),
    (f"/images/{ID}", f"{VND}v2", f"/v2/images/{ID}", "image"),
    (f"/images/{ID}", f"{VND}v2.1", f"/v2/images/{ID}", "image"),
    (f"/v2/./images/{ID}", None, f"/v2/images/{ID}", "image"),
    (f"/v2/x/../images/{ID}", None, f"/v2/images/{ID}", "image"),
    (f"/v2/./x/../images/{ID}/tasks", None, f"/v2/images/{ID}/tasks", "image_tasks"),
    (f"//v2//images/{ID}", None, f"/v2/images/{ID}", "image"),
    (f"/v2.1/images/{ID}", None, f"/v2/images/{ID}", "image"),
    (f"http://evil/v2/images/{ID}", None, f"/v2/images/{ID}", "image"),
    ("/tasks", f"{VND}v2", "/v2/tasks", "tasks"),
    (f"/v2/images/{ID}/members", None, f"/v2/images/{ID}/members", None),
    ("/v2/images", f"{VND}v2", "/v2/v2/images", "refused"),  # Glance: /v2/v2/images, a 404
    ("/", None, "/", None),
    ("/v1/images", None, "/", None),  # Glance answers its version list
    (f"/v2/images/{ID}", f"{VND}v1", "/", None),  # the media type wins over the URL
    (f"/v2/images/{ID}", f"{VND}v2, */*", "/", None),  # "v2, */*" is no version
    ("/versions/anything", f"{VND}v2", "/versions", None),
    ("/healthcheck", None, "/healthcheck", None),
]


@pytest.mark.parametrize(("path", "accept", "expected", "route"), CANONICAL)
def test_canonical_path_and_route(path, accept, expected, route) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    if accept:
        environ["HTTP_ACCEPT"] = accept
    if route == "refused":
        with pytest.raises(ApiError) as exc:
            canonical(environ)
        assert exc.value.status == 404
        return
    request = canonical(environ)
    assert request.path == expected
    assert (request.route or (None,))[0] == route
    # Glance must not negotiate again: the media type is replaced.
    assert request.accept == ("application/json" if accept else None)
    # Idempotent: the canonical form is its own canonical form.
    again = canonical({"REQUEST_METHOD": "GET", "PATH_INFO": request.path})
    assert again.path == request.path and again.accept is None


@pytest.mark.parametrize(
    ("environ", "status"),
    [
        ({"PATH_INFO": f"/v2/images/{ID}/"}, 404),
        ({"PATH_INFO": f"/v2/images/{ID}/unknown"}, 404),
        ({"PATH_INFO": f"/../v2/images/{ID}"}, 400),
        ({"PATH_INFO": "/v2/images/a\x00"}, 400),
        ({"PATH_INFO": "/v2/images/\xff"}, 400),  # not UTF-8
        ({"PATH_INFO": "/v2/images/a/b", "RAW_URI": "/v2/images/a%2Fb"}, 400),
        ({"PATH_INFO": "/v2/images/a%2Fb", "REQUEST_URI": "/v2/images/a%2Fb"}, 400),
        ({"PATH_INFO": "*"}, 400),
    ],
)
def test_what_cannot_be_placed_is_refused(environ, status) -> None:
    with pytest.raises(ApiError) as exc:
        canonical({"REQUEST_METHOD": "GET", **environ})
    assert exc.value.status == status


def test_inside_glance_api_the_negotiated_path_is_used_as_it_is() -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"//v2/images/{ID}", "api.version": 2}
    request = canonical(environ)
    assert request.path == f"/v2/images/{ID}" and request.route == ("image", ID)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 §5.2.4 examples
        ("/mid/content=5/../6", "/mid/6"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/a/..b/.c", "/a/..b/.c"),
    ],
)
def test_remove_dot_segments(path, expected) -> None:
    assert remove_dot_segments(path) == expected


def test_target_requotes_the_decoded_path() -> None:
    request = canonical({"REQUEST_METHOD": "GET", "PATH_INFO": "/v2/images/a b/tags/\xc3\xa9"})
    assert request.target("x=1") == "/v2/images/a%20b/tags/%C3%A9?x=1"


def test_propguards_own_relations_route_is_known() -> None:
    """``/v2/instances/{uuid}/images`` is no Glance route: the relations API answers it
    (propguard serve refused it with 404 before it reached the relations layer)."""
    path = "/v2/instances/6df93075-d8e0-4fc8-a5f1-0eb0e610585a/images"
    request = canonical({"REQUEST_METHOD": "GET", "PATH_INFO": path})
    assert request.path == path
    with pytest.raises(ApiError) as info:
        canonical({"REQUEST_METHOD": "GET", "PATH_INFO": "/v2/instances/x/other"})
    assert info.value.status == 404
