"""The JWT filter against a real JWKS provider on loopback: refetch, rotation, outage, no stalls.

The provider is an ``http.server`` in a thread of this test, on
``127.0.0.1:<free port>``, allowed through ``no_network`` with the
``allow_loopback_port`` fixture. It counts its requests, can rotate keys, go
down (503 or a closed port) and answer slowly. Time-dependent bounds
(cooldown, ``jwks_max_stale``) are driven by replacing the refresher's
monotonic ``clock`` (a documented attribute of
:class:`propguard.jwt.jwks.RemoteJWKS`), never by sleeping through them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import webob
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from oslo_config import cfg

from propguard.jwt.filter import JWTAuthFilter, make_filter
from propguard.jwt.token_cli import mint, thumbprint

ISS = "https://idp.example/realms/openstack"


def new_key() -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid=thumbprint(jwk), alg="RS256", use="sig")
    return private, jwk


@dataclass
class Provider:
    """A JWKS endpoint: ``keys`` is served as it is at each request."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    status: int = 200
    delay: float = 0.0
    cache_control: str | None = None
    redirect: bool = False
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                provider.requests += 1
                if provider.redirect and self.path == "/jwks":
                    self.send_response(302)
                    self.send_header("Location", provider.url.replace("/jwks", "/moved"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if provider.delay:
                    time.sleep(provider.delay)
                body = json.dumps({"keys": provider.keys}).encode()
                self.send_response(provider.status)
                self.send_header("Content-Type", "application/json")
                if provider.cache_control:
                    self.send_header("Cache-Control", provider.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def provider(allow_loopback_port) -> Iterator[Provider]:
    result = Provider()
    result.server = ThreadingHTTPServer(("127.0.0.1", 0), result.handler())
    result.server.daemon_threads = True
    allow_loopback_port(result.server.server_address[1])
    thread = threading.Thread(target=result.server.serve_forever, daemon=True)
    thread.start()
    yield result
    result.server.shutdown()
    result.server.server_close()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["HTTP_X_IDENTITY_STATUS"].encode()]


@pytest.fixture
def jwt_filter(provider: Provider) -> Iterator[Any]:
    """``make(**options) -> (filter, remote, clock)`` over ``provider``; threads stopped at teardown."""
    made: list[JWTAuthFilter] = []

    def make(**options: str) -> tuple[JWTAuthFilter, Any, Clock]:
        conf = {
            "iss": ISS,
            "audiences": "glance",
            "algorithms": "RS256",
            "jwks_url": provider.url,
            "jwks_refetch_cooldown": "30",
            "jwks_max_stale": "3600",
            "jwks_timeout": "2",
            "token_cache_size": "0",
            **options,
        }
        middleware = make_filter(ok_app, conf, conf=cfg.ConfigOpts())
        made.append(middleware)
        (remote,) = middleware.config.remotes
        clock = Clock()
        remote.clock = clock
        # The first fetch happened at load, on the real clock: restate it on ours.
        remote._fetched_at = remote._last_attempt = clock.now
        return middleware, remote, clock

    yield make
    for middleware in made:
        middleware.stop()


def status(middleware: JWTAuthFilter, token: str) -> int:
    return (
        webob.Request.blank("/", headers={"X-Auth-Token": token})
        .get_response(middleware)
        .status_int
    )


def signed(private: Any, kid: str | None, **kwargs: Any) -> str:
    return mint(key=private, alg="RS256", issuer=ISS, audience="glance", kid=kid, **kwargs)


def test_keys_are_fetched_at_load_and_used(provider, jwt_filter):
    private, jwk = new_key()
    provider.keys = [jwk]
    middleware, remote, _ = jwt_filter()
    assert provider.requests == 1
    for _ in range(5):
        assert status(middleware, signed(private, jwk["kid"])) == 200
    assert provider.requests == 1  # cached keys: no fetch per request


def test_unknown_kid_one_refetch_then_401_and_cooldown(provider, jwt_filter):
    private, jwk = new_key()
    provider.keys = [jwk]
    middleware, remote, clock = jwt_filter()
    clock.now += 31  # past the cooldown of the load-time fetch
    assert status(middleware, signed(private, "unknown-1")) == 401
    assert provider.requests == 2  # exactly one refetch
    # A second unknown kid within the cooldown causes no fetch...
    assert status(middleware, signed(private, "unknown-2")) == 401
    clock.now += 10
    assert status(middleware, signed(private, "unknown-3")) == 401
    assert provider.requests == 2
    # ... and after it, the kid already found unknown is not fetched for again (negative cache).
    clock.now += 31
    assert status(middleware, signed(private, "unknown-1")) == 401
    assert provider.requests == 2
    # A new unknown kid after the cooldown: one more fetch.
    assert status(middleware, signed(private, "unknown-4")) == 401
    assert provider.requests == 3
    # Known keys kept working throughout, without fetches.
    assert status(middleware, signed(private, jwk["kid"])) == 200
    assert provider.requests == 3


def test_random_kids_do_not_amplify(provider, jwt_filter):
    private, jwk = new_key()
    provider.keys = [jwk]
    middleware, remote, clock = jwt_filter()
    clock.now += 31
    for i in range(200):
        assert status(middleware, signed(private, f"random-{i}")) == 401
    assert provider.requests == 2  # load + one refetch (PyJWKClient with cooldown 0: 200)


def test_rotation_by_unknown_kid(provider, jwt_filter):
    old_private, old = new_key()
    provider.keys = [old]
    middleware, remote, clock = jwt_filter()
    assert status(middleware, signed(old_private, old["kid"])) == 200
    new_private, new = new_key()
    provider.keys = [new]  # the provider rotates: the new key in, the old one out
    clock.now += 31
    assert status(middleware, signed(new_private, new["kid"])) == 200
    assert provider.requests == 2
    assert status(middleware, signed(old_private, old["kid"])) == 401  # no longer published


def test_rotation_by_background_refresh(provider, jwt_filter):
    old_private, old = new_key()
    provider.keys = [old]
    middleware, remote, clock = jwt_filter(jwks_refresh_interval="1", jwks_refetch_cooldown="3600")
    new_private, new = new_key()
    provider.keys = [old, new]
    deadline = time.monotonic() + 10
    while new["kid"] not in remote.current().kids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new["kid"] in remote.current().kids
    # The new kid was found by the refresher, not by a request (the cooldown forbids that).
    assert status(middleware, signed(new_private, new["kid"])) == 200


def test_cache_control_max_age_shortens_the_refresh(provider, jwt_filter):
    _, jwk = new_key()
    provider.keys = [jwk]
    provider.cache_control = "public, max-age=60"
    middleware, remote, _ = jwt_filter(jwks_refresh_interval="300", jwks_refetch_cooldown="30")
    assert remote._next_delay == 60
    provider.cache_control = "max-age=0"
    remote.refresh()
    assert remote._next_delay == 30  # never below the cooldown


@pytest.mark.parametrize("outage", ["503", "closed"])
def test_provider_down_stale_keys_within_the_bound_then_refused(provider, jwt_filter, outage):
    private, jwk = new_key()
    provider.keys = [jwk]
    middleware, remote, clock = jwt_filter(jwks_max_stale="3600")
    token = signed(private, jwk["kid"], expires_in=86400)
    if outage == "503":
        provider.status = 503
    else:
        provider.server.shutdown()
        provider.server.server_close()
    clock.now += 1800
    assert remote.refresh() is False  # the provider is down
    assert remote.failures == 1
    assert status(middleware, token) == 200  # stale keys, within jwks_max_stale
    clock.now += 1801  # 3601 s after the last good fetch
    assert remote.refresh() is False
    assert status(middleware, token) == 401  # refused after the bound (fail closed)
    if outage == "503":
        provider.status = 200
        assert remote.refresh() is True
        assert status(middleware, token) == 200  # back once a fetch succeeds


def test_no_request_waits_on_a_slow_provider_while_its_key_is_cached(provider, jwt_filter):
    """PyJWKClient 2.15.1 stalls every validation for the provider's delay once its cache expires."""
    private, jwk = new_key()
    provider.keys = [jwk]
    middleware, remote, clock = jwt_filter(jwks_timeout="5")
    token = signed(private, jwk["kid"])
    provider.delay = 1.5
    refresher = threading.Thread(target=remote.refresh)
    refresher.start()
    time.sleep(0.2)  # the fetch is now under way, holding the single-flight lock
    assert remote._fetching.locked()
    started = time.monotonic()
    for _ in range(20):
        assert status(middleware, token) == 200
    elapsed = time.monotonic() - started
    # An unknown kid during the fetch is refused at once: it does not queue behind it.
    clock.now += 31
    started = time.monotonic()
    assert status(middleware, signed(private, "unknown")) == 401
    unknown_elapsed = time.monotonic() - started
    refresher.join()
    assert elapsed < 0.75, f"cached-key requests waited {elapsed:.2f} s on the provider"
    assert unknown_elapsed < 0.5, f"an unknown kid waited {unknown_elapsed:.2f} s"
    assert provider.requests == 2  # load + the refresher's; none for the unknown kid


def test_redirects_are_refused(provider, jwt_filter):
    _, jwk = new_key()
    provider.keys = [jwk]
    middleware, remote, _ = jwt_filter()
    failures, requests = remote.failures, provider.requests
    provider.redirect = True  # /jwks -> 302 -> /moved, which would serve the keys
    assert remote.refresh() is False
    assert remote.failures == failures + 1
    assert provider.requests == requests + 1  # /moved was never asked for
