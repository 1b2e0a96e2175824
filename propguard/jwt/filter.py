"""The JWT identity filter: keystonemiddleware ``auth_token``'s contract, from PyJWT-verified tokens.

What it trusts: only signatures by the keys configured per issuer (see
:mod:`propguard.jwt.validator`). What it sets, for every request, after
stripping every identity header a client sent (``auth_token``'s
``remove_auth_headers`` list plus ``OpenStack-System-Scope``, which
``auth_token`` forgets):

* ``X-Identity-Status``: ``Confirmed`` for a valid user token, else
  ``Invalid``; and, only when an ``X-Service-Token`` was sent,
  ``X-Service-Identity-Status``: ``Confirmed`` for a valid token carrying one
  of ``service_token_roles``, else ``Invalid``;
* for a confirmed user: ``X-Roles``, ``X-User-Id``, ``X-User-Name``,
  ``X-User-Domain-Id``, ``X-Project-Id``, ``X-Project-Name``,
  ``X-Project-Domain-Id``, ``X-Domain-Id``..., ``X-Is-Admin-Project``,
  ``OpenStack-System-Scope`` and the deprecated copies (``X-Role``,
  ``X-User``, ``X-Tenant-Id``, ``X-Tenant-Name``, ``X-Tenant``), with
  ``None`` for what the token does not say, as ``auth_token`` writes them;
* for a confirmed service token: ``X-Service-Roles``, ``X-Service-User-Id``...;
* ``environ['propguard.identity']``: the :class:`propguard.identity.IdentityClaims`
  mapping, which tells propguard's filter a trusted layer validated the
  caller (the same role ``environ['keystone.token_auth']`` plays for
  ``auth_token``); ``environ['propguard.jwt']``: the verified claims.

Semantics kept from ``auth_token``: no or an invalid user token is a 401
(JSON body of the same shape, ``WWW-Authenticate: Bearer``), unless
``delay_auth_decision``, then the request goes on as ``Invalid``; a 401
from below also gets ``WWW-Authenticate``; an expired user token counts only
together with a confirmed service token, within ``allow_expired_window``.
Deliberate differences: an invalid service token never fails the request
(it only gives no service roles; ``auth_token`` 13 answers 401); a service
token without a service role is always ``Invalid`` (13.0's default
``service_token_roles_required = true``, not optional here); the service
token never overwrites the user's ``OpenStack-System-Scope``.

Not available in JWT mode: ``X-Service-Catalog`` (there is no catalog), so
Glance features that call other services with the user's token (multi-tenant
Swift store, the Cinder store) do not work behind this filter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from propguard.identity import CONFIRMED, PROPGUARD_IDENTITY
from propguard.jwt import config as jwt_config
from propguard.jwt.claims import Identity
from propguard.jwt.validator import TokenRejected, Validator, Verified

LOG = logging.getLogger(__name__)

INVALID = "Invalid"
JWT_ENVIRON = "propguard.jwt"

_TEMPLATE = (
    ("X%s-Domain-Id", None),
    ("X%s-Domain-Name", None),
    ("X%s-Project-Id", "project_id"),
    ("X%s-Project-Name", "project_name"),
    ("X%s-Project-Domain-Id", "project_domain_id"),
    ("X%s-Project-Domain-Name", None),
    ("X%s-User-Id", "user_id"),
    ("X%s-User-Name", "user_name"),
    ("X%s-User-Domain-Id", "user_domain_id"),
    ("X%s-User-Domain-Name", None),
)
_DEPRECATED = {
    "X-Role": "X-Roles",
    "X-User": "X-User-Name",
    "X-Tenant-Id": "X-Project-Id",
    "X-Tenant-Name": "X-Project-Name",
    "X-Tenant": "X-Project-Name",
}


def _key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _stripped_headers() -> tuple[str, ...]:
    """keystonemiddleware's ``_all_auth_headers`` (13.0.1), plus ``OpenStack-System-Scope``."""
    names = [
        "X-Service-Catalog",
        "X-Identity-Status",
        "X-Service-Identity-Status",
        "X-Is-Admin-Project",
        *_DEPRECATED,
        *(template % prefix for template, _ in _TEMPLATE for prefix in ("", "-Service")),
        "X-Roles",
        "X-Service-Roles",
        "OpenStack-System-Scope",
    ]
    return tuple(_key(name) for name in names)


STRIPPED = _stripped_headers()
_USER = tuple((_key(t % ""), attr) for t, attr in _TEMPLATE)
_SERVICE = tuple((_key(t % "-Service"), attr) for t, attr in _TEMPLATE)
_DEPRECATED_KEYS = tuple((_key(old), _key(new)) for old, new in _DEPRECATED.items())

UNAUTHORIZED_BODY = json.dumps(
    {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }
).encode()


def _bearer(environ: Mapping[str, Any]) -> str | None:
    value = environ.get("HTTP_AUTHORIZATION")
    if not value:
        return None
    scheme, _, token = str(value).partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class JWTAuthFilter:
    """WSGI middleware; build it with :func:`filter_factory` (paste) or directly."""

    def __init__(self, app: Callable[..., Any], config: jwt_config.FilterConfig) -> None:
        self.app = app
        self.config = config
        self.validator = Validator(config)
        challenge = "Bearer"
        if config.www_authenticate_realm:
            realm = config.www_authenticate_realm.replace("\\", "\\\\").replace('"', '\\"')
            challenge += f' realm="{realm}"'
        self._challenge = challenge

    # -- WSGI -----------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        for key in STRIPPED:
            environ.pop(key, None)
        user_token = environ.get("HTTP_X_AUTH_TOKEN") or environ.get("HTTP_X_STORAGE_TOKEN")
        user_token = user_token or _bearer(environ)
        service_token = environ.get("HTTP_X_SERVICE_TOKEN")

        service: Verified | None = None
        service_status: str | None = None
        if service_token:
            service = self._validate(service_token, "service", False)
            if service is not None and not self.config.service_token_roles.intersection(
                service.identity.roles
            ):
                LOG.info(
                    "Service token without a service role (%s): not confirmed", self._who(service)
                )
                service = None
            service_status = CONFIRMED if service is not None else INVALID

        user = self._validate(user_token, "user", service is not None) if user_token else None
        if user is None and not self.config.delay_auth_decision:
            return self._reject(start_response, token_given=bool(user_token))

        environ[_key("X-Identity-Status")] = CONFIRMED if user is not None else INVALID
        if service_status is not None:
            environ[_key("X-Service-Identity-Status")] = service_status
        if user is not None:
            self._set_user_headers(environ, user.identity)
        if service is not None:
            self._set_service_headers(environ, service.identity)
        environ[PROPGUARD_IDENTITY] = _identity_claims(user, service, service_status)
        environ[JWT_ENVIRON] = {
            "user": dict(user.claims) if user else None,
            "service": dict(service.claims) if service else None,
            "user_expired": bool(user and user.expired),
        }
        return self.app(environ, self._add_challenge(start_response))

    # -- pieces ---------------------------------------------------------------

    def _validate(self, token: str, use: str, allow_expired: bool) -> Verified | None:
        try:
            verified = self.validator.validate(token, use=use, allow_expired=allow_expired)
        except TokenRejected as exc:
            LOG.info("Invalid %s token: %s", use, exc)
            return None
        if verified.expired:
            LOG.info(
                "Expired user token accepted with a confirmed service token (%s)",
                self._who(verified),
            )
        return verified

    @staticmethod
    def _who(verified: Verified) -> str:
        identity = verified.identity
        return f"iss={identity.issuer} sub={identity.user_id}"

    def _reject(self, start_response: Callable[..., Any], *, token_given: bool) -> list[bytes]:
        challenge = self._challenge
        if token_given:
            challenge += (", " if " " in challenge else " ") + 'error="invalid_token"'
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "application/json; charset=UTF-8"),
                ("Content-Length", str(len(UNAUTHORIZED_BODY))),
                ("WWW-Authenticate", challenge),
            ],
        )
        return [UNAUTHORIZED_BODY]

    def _add_challenge(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        """As ``auth_token``'s ``process_response``: a 401 from below also says how to authenticate."""

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("401") and not any(
                name.lower() == "www-authenticate" for name, _ in headers
            ):
                headers = [*headers, ("WWW-Authenticate", self._challenge)]
            return (
                start_response(status, headers, exc_info)
                if exc_info
                else start_response(status, headers)
            )

        return start

    @staticmethod
    def _set_user_headers(environ: dict[str, Any], identity: Identity) -> None:
        environ["HTTP_X_ROLES"] = ",".join(identity.roles)
        environ["HTTP_OPENSTACK_SYSTEM_SCOPE"] = identity.system_scope
        for key, attr in _USER:
            environ[key] = getattr(identity, attr) if attr else None
        # Keystone's answer for a token without is_admin_project (no admin project configured).
        environ["HTTP_X_IS_ADMIN_PROJECT"] = "True"
        for old, new in _DEPRECATED_KEYS:
            environ[old] = environ[new]

    @staticmethod
    def _set_service_headers(environ: dict[str, Any], identity: Identity) -> None:
        environ["HTTP_X_SERVICE_ROLES"] = ",".join(identity.roles)
        for key, attr in _SERVICE:
            environ[key] = getattr(identity, attr) if attr else None

    def stop(self) -> None:
        """Stop the JWKS refresher threads (tests; a server process just exits)."""
        for remote in self.config.remotes:
            remote.stop()


def _identity_claims(
    user: Verified | None, service: Verified | None, service_status: str | None
) -> dict[str, Any]:
    """The ``propguard.identity`` mapping (:class:`propguard.identity.IdentityClaims`)."""
    claims: dict[str, Any] = {"identity_status": CONFIRMED if user is not None else INVALID}
    if user is not None:
        u = user.identity
        claims.update(
            user_id=u.user_id,
            project_id=u.project_id,
            user_domain_id=u.user_domain_id,
            project_domain_id=u.project_domain_id,
            roles=list(u.roles),
            is_admin_project=True,
            system_scope=u.system_scope,
        )
    if service_status is not None:
        claims["service_identity_status"] = service_status
    if service is not None:
        s = service.identity
        claims.update(
            service_user_id=s.user_id,
            service_project_id=s.project_id,
            service_user_domain_id=s.user_domain_id,
            service_project_domain_id=s.project_domain_id,
            service_roles=list(s.roles),
        )
    return claims


def filter_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> Callable[..., Any]:
    """paste.deploy entry point (``egg:propguard#jwt``); a bad option stops the pipeline here."""
    config = jwt_config.load({**local_conf})

    def _filter(app: Callable[..., Any]) -> JWTAuthFilter:
        return JWTAuthFilter(app, config)

    return _filter


def make_filter(
    app: Callable[..., Any], options: Mapping[str, Any], **kwargs: Any
) -> JWTAuthFilter:
    """Build the filter from a dict of options, as paste would (tests, benchmarks, embedding)."""
    return JWTAuthFilter(app, jwt_config.load(options, **kwargs))


__all__: Iterable[str] = ("JWTAuthFilter", "filter_factory", "make_filter", "STRIPPED")
