"""Connection names only the client's own headers; Host is validated; RFC 7239 quoting."""

from __future__ import annotations

import pytest

from propguard.proxy import headers as hdrs
from propguard.proxy.app import ProxyApp
from propguard.proxy.canonical import CanonicalTarget


def test_connection_cannot_remove_headers_the_pipeline_set() -> None:
    captured = {}

    def auth_layer(environ, start_response):  # as auth_token: drops the client's, sets its own
        environ["HTTP_X_PROJECT_ID"] = "p-validated"
        environ["HTTP_X_ROLES"] = "member"
        environ["HTTP_X_CUSTOM_SET"] = "by-pipeline"
        captured.update(hdrs.request_headers(environ))
        start_response("204 No Content", [])
        return []

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/images",  # with the media type below: /v2/images
        "REMOTE_ADDR": "10.0.0.9",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "images.example:9292",
        "HTTP_CONNECTION": "X-Project-Id, X-Tenant-Id, X-Roles, X-Custom-Set, X-Mine",
        "HTTP_X_TENANT_ID": "t",
        "HTTP_X_CUSTOM_SET": "client",
        "HTTP_X_MINE": "hop",
        "HTTP_ACCEPT": "application/vnd.openstack.images-v2",
    }
    CanonicalTarget(auth_layer)(environ, lambda *a: None)
    assert environ["PATH_INFO"] == "/v2/images"
    assert captured["X-Project-Id"] == "p-validated"
    assert captured["X-Roles"] == "member"
    assert captured["X-Tenant-Id"] == "t"  # identity headers: never the client's to remove
    assert captured["X-Custom-Set"] == "by-pipeline"  # changed by a layer: not the client's
    assert "X-Mine" not in captured  # the client's own hop-by-hop header
    assert captured["Accept"] == "application/json"


@pytest.mark.parametrize(
    "host", ["a;for=6.6.6.6;proto=https;x=", 'a"b', "a,b", "a b", "h:p", "[::1", "a/b"]
)
def test_invalid_hosts(host) -> None:
    assert not hdrs.valid_host(host)
    with pytest.raises(hdrs.InvalidHost):
        hdrs.request_headers({"HTTP_HOST": host, "PATH_INFO": "/"})


@pytest.mark.parametrize("host", ["images.example", "10.0.0.1:9292", "[2001:db8::1]:443", "a_b"])
def test_valid_hosts(host) -> None:
    assert hdrs.valid_host(host)


def test_forwarded_values_are_tokens_or_quoted_strings() -> None:
    assert hdrs.forwarded_value("10.0.0.1") == "10.0.0.1"
    assert hdrs.forwarded_value("[2001:db8::1]") == '"[2001:db8::1]"'
    assert hdrs.forwarded_value('a"b\\') == '"a\\"b\\\\"'


def test_scheme_aliases_from_a_client_are_dropped() -> None:
    out = hdrs.request_headers(
        {
            "PATH_INFO": "/",
            "REMOTE_ADDR": "10.0.0.9",
            "HTTP_HOST": "h",
            "HTTP_X_FORWARDED_SSL": "on",
            "HTTP_X_FORWARDED_PROTOCOL": "https",
            "HTTP_FRONT_END_HTTPS": "on",
        }
    )
    assert not {"X-Forwarded-Ssl", "X-Forwarded-Protocol", "Front-End-Https"} & set(out)
    assert out["Forwarded"] == "for=10.0.0.9;proto=http"


def test_proxy_app_refuses_a_target_nobody_made_canonical() -> None:
    app = ProxyApp.__new__(ProxyApp)
    app.trusted_proxies = ()
    statuses = []
    body = app(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/v2/./images/x", "HTTP_HOST": "h"},
        lambda status, headers: statuses.append(status),
    )
    assert statuses[0].startswith("400") and b'"code":400' in b"".join(body)
