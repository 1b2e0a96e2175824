"""The verified-token cache never outlives trust; JWKS failures are failed fetches; option floors; atomic key files (issue 20).

A JWKS issuer is built from paste options whose ``jwks_url`` is a closed
loopback port (the load-time fetch fails: logged, not fatal), then its
fetch is replaced by a function serving documents the test controls, and
its monotonic clock by a hand-moved one; nothing sleeps.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import webob
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt_unit_constants import AUD, ISS
from oslo_config import cfg

from propguard.jwt.config import ConfigError, load
from propguard.jwt.fetch import FetchFailed
from propguard.jwt.token_cli import mint, thumbprint

CLOSED = "http://127.0.0.1:9/jwks"  # discard port: nothing listens on loopback


def new_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid=thumbprint(jwk), alg="RS256", use="sig")
    return private, jwk


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(build):
    """``(filter, remote, clock, serve)``: ``serve(keys)`` makes the next fetch return them."""
    middleware = build(
        {
            "iss": ISS,
            "audiences": AUD,
            "algorithms": "RS256",
            "jwks_url": CLOSED,
            "jwks_timeout": "2",
            "jwks_refresh_interval": "300",
            "jwks_max_stale": "3600",
        }
    )
    (remote,) = middleware.config.remotes
    assert remote.failures == 1 and len(remote.current()) == 0  # failed at load, not fatal
    clock = Clock()
    remote.clock = clock
    served: dict = {}
    remote._fetch = lambda: (json.loads(json.dumps({"keys": served["keys"]})), None)

    def serve(keys):
        served["keys"] = keys
        assert remote.refresh() is True

    return middleware, remote, clock, serve


def status(middleware, token: str) -> int:
    request = webob.Request.blank("/", headers={"X-Auth-Token": token})
    return request.get_response(middleware).status_int


def signed(private, kid) -> str:
    return mint(key=private, alg="RS256", issuer=ISS, audience=AUD, kid=kid, expires_in=86400)


def test_a_cached_token_dies_with_its_key_on_rotation(issuer):
    """Today a cached token validated for up to token_cache_ttl (300 s) after its key left."""
    middleware, remote, clock, serve = issuer
    old_private, old = new_key()
    serve([old])
    token = signed(old_private, old["kid"])
    assert status(middleware, token) == 200
    assert status(middleware, token) == 200  # now from the cache
    _, new = new_key()
    serve([new])  # rotation: the old key is no longer published
    assert status(middleware, token) == 401


def test_a_cached_token_dies_when_the_keys_go_stale(issuer):
    middleware, remote, clock, serve = issuer
    private, jwk = new_key()
    serve([jwk])
    token = signed(private, jwk["kid"])
    assert status(middleware, token) == 200
    remote._fetch = lambda: (_ for _ in ()).throw(FetchFailed("provider down"))
    clock.now += 3000
    assert remote.refresh() is False
    assert status(middleware, token) == 200  # stale keys within jwks_max_stale
    clock.now += 601  # 3601 s after the last good fetch
    assert status(middleware, token) == 401  # at once, cache or not


def test_an_unchanged_document_keeps_the_cache(issuer, monkeypatch):
    middleware, remote, clock, serve = issuer
    private, jwk = new_key()
    serve([jwk])
    token = signed(private, jwk["kid"])
    assert status(middleware, token) == 200
    verified = []
    original = middleware.validator._verify
    monkeypatch.setattr(
        middleware.validator, "_verify", lambda *a: verified.append(1) or original(*a)
    )
    before = remote.current()
    serve([jwk])  # a routine refresh returning the same keys
    assert remote.current() is before
    assert status(middleware, token) == 200
    assert verified == []  # served from the cache: no second signature check


@pytest.mark.parametrize(
    "error",
    [
        http.client.BadStatusLine("garbage"),
        http.client.IncompleteRead(b"{", 10),
        http.client.HTTPException("got more than 100 headers"),
        http.client.LineTooLong("header line"),
        RecursionError("maximum recursion depth exceeded"),
        TypeError("unhashable type: 'list'"),
        MemoryError(),
        ValueError("not JSON"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_fetch_failure_is_a_failed_fetch(issuer, error):
    """Today only OSError, ValueError and URLError were caught: the rest escaped (a 500)."""
    middleware, remote, clock, serve = issuer
    private, jwk = new_key()
    serve([jwk])

    def fail():
        raise error

    remote._fetch = fail
    clock.now += 31
    assert remote.refresh() is False
    assert status(middleware, signed(private, jwk["kid"])) == 200  # last good keys kept
    assert status(middleware, signed(private, "unknown-kid")) == 401  # its refetch fails: 401


@pytest.mark.parametrize(
    "document",
    [
        {"keys": [{"kty": ["RSA"], "kid": "a"}]},
        {"keys": [{"kty": "EC", "crv": {"x": 1}, "kid": "b"}]},
        {"keys": [{"kty": "RSA", "alg": ["RS256"], "kid": "c"}]},
        {"keys": [{"kty": "RSA", "use": ["sig"], "kid": "d"}]},
        {"keys": "none"},
        ["keys"],
    ],
    ids=["kty-list", "crv-object", "alg-list", "use-list", "keys-string", "array"],
)
def test_odd_jwks_documents_are_failed_or_skipped(issuer, document):
    middleware, remote, clock, serve = issuer
    private, jwk = new_key()
    serve([jwk])
    remote._fetch = lambda: (document, None)
    clock.now += 31
    remote.refresh()  # never raises
    good = signed(private, jwk["kid"])
    assert status(middleware, good) in (200, 401)
    assert status(middleware, signed(private, "other")) == 401


@pytest.mark.parametrize(
    "change, message",
    [
        ({"jwks_refetch_cooldown": "0"}, "jwks_refetch_cooldown"),
        ({"jwks_max_stale": "0"}, "jwks_max_stale"),
        ({"jwks_max_stale": "60", "jwks_refresh_interval": "300"}, "jwks_max_stale"),
        ({"jwks_timeout": "600"}, "jwks_timeout"),
        ({"jwks_cafile": "/nonexistent/ca.pem", "jwks_url": "https://idp.example/certs"}, "cafile"),
    ],
)
def test_nonsensical_jwks_bounds_are_refused_at_start(change, message):
    options = {"iss": ISS, "audiences": AUD, "algorithms": "RS256", "jwks_url": CLOSED, **change}
    with pytest.raises(ConfigError, match=message):
        load(options, cfg.ConfigOpts(), start=False)


def test_parallel_propguard_token_calls_never_fail(tmp_path: Path):
    """Today: FileExistsError on the private key, or a half-written jwks.json read by another."""
    key_dir = tmp_path / "keys"
    command = [
        sys.executable,
        "-c",
        "import sys; from propguard.cli import main; sys.exit(main(sys.argv[1:]))",
        "token",
        "--key-dir",
        str(key_dir),
    ]

    def run(i: int) -> subprocess.CompletedProcess:
        alg = ("RS256", "ES256")[i % 2]
        return subprocess.run(
            [*command, "--alg", alg], capture_output=True, text=True, timeout=120, check=False
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(8)))
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    keys = json.loads((key_dir / "jwks.json").read_text())["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]  # neither update lost
    # Every token verifies with the one key pair that won.
    import jwt

    jwks = jwt.PyJWKSet.from_dict({"keys": keys})
    for result in results:
        text = result.stdout.strip()
        kid = jwt.get_unverified_header(text)["kid"]
        key = next(k for k in jwks.keys if k.key_id == kid)
        jwt.decode(text, key.key, algorithms=[key.algorithm_name], audience="glance")
    assert not [p for p in key_dir.iterdir() if p.name.startswith(".") and "lock" not in p.name]
