"""Key material and builders for the JWT filter's unit tests.

Keys are generated once per session (RSA 2048, EC P-256, a random HMAC
secret) into a temporary directory with :mod:`propguard.jwt.token_cli`'s own
helpers, so tests mint real signed tokens and the filter verifies them with
real PyJWT; nothing is mocked. ``app`` records what reaches the application
below the filter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jwt_unit_constants import AUD, ISS
from oslo_config import cfg

from propguard.jwt.filter import JWTAuthFilter, make_filter
from propguard.jwt.token_cli import ensure_key_pair, ensure_secret, mint


@dataclass
class Keys:
    dir: Path
    rsa: Any
    rsa_kid: str
    ec: Any
    ec_kid: str
    secret: bytes
    secret_file: Path

    @property
    def rsa_pem(self) -> Path:
        return self.dir / "RS256-public.pem"

    @property
    def ec_pem(self) -> Path:
        return self.dir / "ES256-public.pem"

    @property
    def jwks(self) -> Path:
        return self.dir / "jwks.json"


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("jwt-keys")
    rsa, rsa_kid = ensure_key_pair(directory, "RS256")
    ec, ec_kid = ensure_key_pair(directory, "ES256")
    secret_file = directory / "hs256.secret"
    secret = ensure_secret(secret_file)
    return Keys(directory, rsa, rsa_kid, ec, ec_kid, secret, secret_file)


@pytest.fixture
def token(keys: Keys) -> Callable[..., str]:
    """``token(alg="RS256", **mint kwargs)``: a token signed with the session's key of ``alg``."""

    def make(alg: str = "RS256", **kwargs: Any) -> str:
        key, kid = {
            "RS256": (keys.rsa, keys.rsa_kid),
            "ES256": (keys.ec, keys.ec_kid),
            "HS256": (keys.secret, None),
        }[alg]
        kwargs.setdefault("issuer", ISS)
        kwargs.setdefault("audience", AUD)
        kwargs.setdefault("kid", kid)
        return mint(key=key, alg=alg, **kwargs)

    return make


@dataclass
class Recorder:
    """The application below the filter: answers 200 and keeps each environ it saw."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    status: str = "200 OK"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.seen.append(dict(environ))
        start_response(self.status, [("Content-Type", "application/json")])
        return [json.dumps({"ok": True}).encode()]

    @property
    def last(self) -> dict[str, Any]:
        return self.seen[-1]


@pytest.fixture
def app() -> Recorder:
    return Recorder()


@pytest.fixture
def rsa_options(keys: Keys) -> dict[str, str]:
    return {
        "iss": ISS,
        "audiences": AUD,
        "algorithms": "RS256",
        "public_key_files": f"RS256:{keys.rsa_pem}",
    }


@pytest.fixture
def build(app: Recorder) -> Iterator[Callable[..., JWTAuthFilter]]:
    """``build(options)``: the filter over ``app`` from paste-style string options."""
    built: list[JWTAuthFilter] = []

    def make(options: Mapping[str, str], **kwargs: Any) -> JWTAuthFilter:
        kwargs.setdefault("conf", cfg.ConfigOpts())  # never the process-wide cfg.CONF
        middleware = make_filter(app, dict(options), **kwargs)
        built.append(middleware)
        return middleware

    yield make
    for middleware in built:
        middleware.stop()
