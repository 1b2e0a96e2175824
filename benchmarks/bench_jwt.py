"""JWT identity filter vs keystonemiddleware ``auth_token``: cost of the auth layer per request.

Run: ``.venv/bin/python benchmarks/bench_jwt.py`` (after ``./scripts/test.sh``).

Each auth layer wraps the same trivial WSGI app (200, empty body); one
request is: copy a prepared environ, call the layer, drain the body. Cases,
all in the same run, alternating within every round (best round kept):

* ``auth_token``: keystonemiddleware 13's ``AuthProtocol`` with
  ``AuthTokenFixture`` tokens: header stripping, the service-token role
  check, building ``AccessInfo`` and setting the headers run for real; the
  token lookup is the fixture's dict (no Keystone, no memcache), so this is
  auth_token at its cheapest, a warm cache at best;
* ``jwt RS256`` / ``jwt ES256``: propguard's JWT filter, keys warm (PEM),
  with its verified-token cache (a token seen before: digest lookup and the
  time checks), and ``nocache``: ``token_cache_size = 0``, a full PyJWT
  signature and claims verification on every request (the first request of
  every new token);
* ``jwt RS256 jwks cache``: the same key served as a JWKS URL's (the
  document handed to the refresher in process, no network), so a cache hit
  also checks that the key set that verified the token is still the
  issuer's current, fresh one.

Both the user-token-only and the user + service token (Nova) shapes are
measured. Ratios are JWT time / auth_token time (below 1: cheaper).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def trivial_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def _start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise AssertionError(f"benchmark request failed: {status}")


def environ_for(headers: dict[str, str]) -> dict[str, Any]:
    import webob

    return webob.Request.blank("/v2/images", headers=headers).environ


def timed(app: Callable[..., Any], environ: dict[str, Any], requests: int) -> float:
    """Seconds per request over ``requests`` calls."""
    start = time.perf_counter()
    for _ in range(requests):
        body = app(dict(environ), _start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()
    return (time.perf_counter() - start) / requests


def keystonemiddleware_cases() -> tuple[dict[str, tuple[Any, dict[str, Any]]], Any]:
    from keystoneauth1 import fixture as ks_fixture
    from keystonemiddleware import auth_token
    from keystonemiddleware import fixture as ksm_fixture

    fixture = ksm_fixture.AuthTokenFixture()
    fixture.setUp()
    fixture.add_token_data(
        token_id="user-token",
        user_id="u1",
        project_id="p1",
        role_list=["member", "reader"],
        expires=None,
    )
    service = ks_fixture.V3Token(user_id="nova", project_id="service", project_name="service")
    service.add_role(name="service")
    fixture.add_token(service, token_id="service-token")
    app = auth_token.filter_factory(
        {},
        www_authenticate_uri="http://keystone.invalid/v3",
        delay_auth_decision="true",
        service_token_roles="service",
        service_token_roles_required="true",
        include_service_catalog="false",
    )(trivial_app)
    user = environ_for({"X-Auth-Token": "user-token"})
    both = environ_for({"X-Auth-Token": "user-token", "X-Service-Token": "service-token"})
    return {"user": (app, user), "user+service": (app, both)}, fixture


def keycloak_token(
    private: Any, alg: str, kid: str, iss: str, roles: list[str], subject: str, project: str
) -> str:
    """A token with a Keycloak-sized payload: realm/client roles, scope, names."""
    from propguard.jwt.token_cli import mint

    extra = {
        "realm_access": {"roles": ["offline_access", "uma_authorization", *roles]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid profile email",
        "preferred_username": subject,
        "azp": "glance",
        "typ": "Bearer",
    }
    return mint(
        key=private,
        alg=alg,
        issuer=iss,
        audience="glance",
        subject=subject,
        roles=roles,
        project_id=project,
        kid=kid,
        extra=extra,
    )


def jwt_cases(workdir: str) -> dict[str, dict[str, tuple[Any, dict[str, Any]]]]:
    from oslo_config import cfg

    from propguard.jwt.filter import make_filter
    from propguard.jwt.token_cli import ensure_key_pair

    cases: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {}
    iss = "https://idp.example/realms/openstack"
    for alg in ("RS256", "ES256"):
        private, kid = ensure_key_pair(workdir, alg)

        user = keycloak_token(private, alg, kid, iss, ["member", "reader"], "u1", "p1")
        nova = keycloak_token(private, alg, kid, iss, ["service"], "nova", "service")
        for cache in ("cache", "nocache", "jwks cache"):
            if cache == "jwks cache" and alg != "RS256":
                continue
            options = {
                "iss": iss,
                "audiences": "glance",
                "algorithms": alg,
                "delay_auth_decision": "true",
                "token_cache_size": "0" if cache == "nocache" else "4096",
            }
            if cache == "jwks cache":
                options["jwks_url"] = "http://127.0.0.1:9/jwks"  # closed: load-time fetch fails
                options["jwks_timeout"] = "1"
            else:
                options["public_key_files"] = f"{alg}:{workdir}/{alg}-public.pem"
            app = make_filter(trivial_app, options, conf=cfg.ConfigOpts())
            if cache == "jwks cache":
                import json

                (remote,) = app.config.remotes
                document = json.loads(Path(workdir, "jwks.json").read_text())
                remote._fetch = lambda document=document: (document, None)
                assert remote.refresh()
            cases[f"jwt {alg} {cache}"] = {
                "user": (app, environ_for({"X-Auth-Token": user})),
                "user+service": (
                    app,
                    environ_for({"X-Auth-Token": user, "X-Service-Token": nova}),
                ),
            }
            # Sanity: the filter confirms both tokens, as auth_token does.
            seen: dict[str, Any] = {}

            def probe(
                environ: dict[str, Any], start_response: Callable[..., Any], seen: dict = seen
            ) -> list[bytes]:
                seen.update(environ)
                start_response("200 OK", [])
                return [b""]

            inner = app.app
            app.app = probe
            app(dict(cases[f"jwt {alg} {cache}"]["user+service"][1]), _start_response)
            app.app = inner
            assert seen["HTTP_X_IDENTITY_STATUS"] == "Confirmed", seen
            assert seen["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Confirmed", seen
        progress(f"{alg}: user token {len(user)} bytes, service token {len(nova)} bytes")
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per case per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.CRITICAL)
    logging.disable(logging.CRITICAL)

    import cryptography
    import jwt
    import keystonemiddleware

    progress("setting up keystonemiddleware auth_token (AuthTokenFixture) and the JWT filters...")
    ksm, fixture = keystonemiddleware_cases()
    with tempfile.TemporaryDirectory(prefix="pg-bench-jwt-") as workdir:
        cases = {"auth_token": ksm, **jwt_cases(workdir)}
        best: dict[tuple[str, str], float] = {}
        for round_ in range(args.rounds):
            progress(f"round {round_ + 1}/{args.rounds}: {args.requests} requests per case...")
            names = list(cases)
            names = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in names:
                for shape, (app, environ) in cases[name].items():
                    value = timed(app, environ, args.requests)
                    key = (name, shape)
                    best[key] = min(best.get(key, value), value)
        fixture.cleanUp()

    print(
        f"auth layer per request, best of {args.rounds} rounds x {args.requests} requests "
        f"(PyJWT {jwt.__version__}, cryptography {cryptography.__version__}, "
        f"keystonemiddleware {getattr(keystonemiddleware, '__version__', '13')})"
    )
    print(f"{'case':22} {'user token':>12} {'ratio':>7} {'user+service':>14} {'ratio':>7}")
    for name in cases:
        cells = []
        for shape in ("user", "user+service"):
            value = best[(name, shape)]
            ratio = value / best[("auth_token", shape)]
            cells.append(f"{value * 1e6:9.1f} µs {ratio:6.2f}x")
        print(f"{name:22} {cells[0]:>20} {cells[1]:>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
