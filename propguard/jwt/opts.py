"""The JWT filter's options, and ``list_opts()`` for ``oslo-config-generator --namespace propguard.jwt``.

Where they are read (first hit wins, as keystonemiddleware's ``auth_token``
and propguard's own filter read theirs):

1. the filter's paste section (``[filter:jwt]`` in glance-api-paste.ini or
   serve.ini);
2. oslo.config: ``[propguard_jwt]`` in the service's configuration
   (glance-api.conf), or in ``oslo_config_project``'s files when the paste
   section names one.

Issuer options: with ``issuers`` unset there is one issuer, whose options
sit beside the filter's (``iss = ...``). With ``issuers = a, b`` each
issuer's options are prefixed by its name in paste (``a.iss = ...``) or live
in the oslo.config group ``[propguard_jwt:a]``.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "propguard_jwt"

#: Every algorithm the filter can be configured with (``none`` is never one).
ALGORITHMS = (
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)

FILTER_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "issuers",
        default=[],
        help="Names of the configured issuers. Empty: one issuer whose options are given "
        "beside these. Otherwise each issuer's options are '<name>.<option>' in the paste "
        "section, or in the oslo.config group [propguard_jwt:<name>].",
    ),
    cfg.BoolOpt(
        "delay_auth_decision",
        default=False,
        help="As keystonemiddleware's: do not answer 401 for a missing or invalid user "
        "token; pass the request on with X-Identity-Status: Invalid (Glance's context "
        "filter then refuses it unless anonymous access is allowed).",
    ),
    cfg.ListOpt(
        "service_token_roles",
        default=["service"],
        help="An X-Service-Token is Confirmed only if it is valid and carries one of these "
        "roles (keystonemiddleware 13's service_token_roles with "
        "service_token_roles_required = true). Only such a token lets an expired user "
        "token through (allow_expired_window).",
    ),
    cfg.IntOpt(
        "allow_expired_window",
        default=172800,
        min=0,
        help="Seconds after its exp during which a user token is still accepted when it "
        "comes with a Confirmed service token (long uploads relayed by Nova or Cinder), as "
        "Keystone's [token] allow_expired_window (default 48 h). 0: never.",
    ),
    cfg.IntOpt(
        "max_token_size",
        default=16384,
        min=256,
        help="Longest token (bytes) looked at; a longer one is refused before it is parsed.",
    ),
    cfg.IntOpt(
        "token_cache_size",
        default=4096,
        min=0,
        help="Verified tokens remembered (by SHA-256 digest), so a token seen again skips "
        "the signature check; exp and the other time checks still run on every request. "
        "0 disables the cache.",
    ),
    cfg.IntOpt(
        "token_cache_ttl",
        default=300,
        min=1,
        help="Seconds a verified token is remembered (as keystonemiddleware's "
        "token_cache_time). A cached token counts only while the key that verified it is "
        "still published and fresh (jwks_max_stale): a removed key stops verifying cached "
        "tokens at once.",
    ),
    cfg.StrOpt(
        "www_authenticate_realm",
        help="realm of the WWW-Authenticate: Bearer header of a 401 (RFC 6750). Unset: none.",
    ),
]

ISSUER_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "iss",
        help="The issuer's exact 'iss' value (required). A token is routed to the issuer "
        "whose iss equals its own, character for character.",
    ),
    cfg.ListOpt(
        "audiences",
        default=[],
        help="Accepted 'aud' values (required; a token must name at least one of them).",
    ),
    cfg.ListOpt(
        "algorithms",
        default=[],
        item_type=cfg.types.String(choices=ALGORITHMS),
        help="Accepted signature algorithms (required). 'none' is never accepted; HMAC "
        "(HS*) and public-key algorithms cannot be mixed in one issuer.",
    ),
    cfg.ListOpt(
        "public_key_files",
        default=[],
        help="PEM public keys or certificates, each as ALG:PATH (e.g. RS256:/etc/glance/"
        "idp.pem): a key verifies only tokens of its algorithm. Tried for any 'kid'.",
    ),
    cfg.StrOpt(
        "jwks_file",
        help="A JWKS document on disk (read once at load). Each key's algorithm is its "
        "'alg', or follows from its curve; an RSA key without 'alg' takes the issuer's one "
        "RSA algorithm. 'oct' keys are refused: HMAC secrets come from hmac_secret_file.",
    ),
    cfg.StrOpt(
        "jwks_url",
        help="A JWKS URL (https; http only on loopback), fetched by a background thread: no "
        "request waits on it while a key is cached.",
    ),
    cfg.StrOpt(
        "jwks_cafile",
        help="CA bundle to verify jwks_url's TLS certificate (default: the system's).",
    ),
    cfg.IntOpt(
        "jwks_refresh_interval",
        default=300,
        min=1,
        help="Seconds between background fetches of jwks_url (a Cache-Control max-age "
        "shortens it, down to jwks_refetch_cooldown).",
    ),
    cfg.IntOpt(
        "jwks_refetch_cooldown",
        default=30,
        min=1,
        help="Least seconds between two fetches caused by an unknown 'kid' (one at a time; "
        "a kid still unknown after a fetch is not fetched again for 10 times this long). "
        "At least 1: without a floor every random kid would be a fetch.",
    ),
    cfg.IntOpt(
        "jwks_max_stale",
        default=86400,
        min=1,
        help="Seconds the last good keys stay in use while jwks_url cannot be fetched; "
        "after that tokens of this issuer (cached ones too) are refused until a fetch "
        "succeeds. At least jwks_refresh_interval.",
    ),
    cfg.FloatOpt(
        "jwks_timeout",
        default=5.0,
        min=0.1,
        max=60.0,
        help="Deadline (seconds) of one whole JWKS fetch: connect, TLS, headers and body "
        "together (a provider dripping bytes cannot stretch it).",
    ),
    cfg.StrOpt(
        "hmac_secret_file",
        help="An HMAC secret as ALG:PATH (e.g. HS256:/etc/glance/jwt.secret): the file's "
        "bytes, a trailing newline removed; at least 32/48/64 bytes for HS256/384/512.",
    ),
    cfg.IntOpt(
        "leeway",
        default=60,
        min=0,
        help="Seconds of clock skew allowed on exp, nbf and iat.",
    ),
    cfg.IntOpt(
        "max_lifetime",
        default=86400,
        min=0,
        help="Longest accepted exp - iat (seconds); 0: no limit.",
    ),
    cfg.ListOpt(
        "required_claims",
        default=["exp", "iat", "sub"],
        help="Claims a token must carry (iss and aud are always required and checked).",
    ),
    cfg.ListOpt(
        "allowed_types",
        default=[],
        help="Accepted 'typ' header values (e.g. at+jwt, JWT); empty: not checked.",
    ),
    cfg.ListOpt(
        "token_use",
        default=["user", "service"],
        item_type=cfg.types.String(choices=("user", "service")),
        help="Where this issuer's tokens are accepted: as the user token (X-Auth-Token or "
        "Authorization: Bearer), as the service token (X-Service-Token), or both.",
    ),
    cfg.ListOpt(
        "roles_claims",
        default=["roles"],
        help="Claim paths whose values are the caller's roles, merged: dotted "
        r"(realm_access.roles, resource_access.<client>.roles; '\.' for a dot in a name); "
        "an array of strings, or a string split on spaces (scope). Each value is one role "
        "exactly, or none: a name with a comma, whitespace, a control or format character or "
        "outside Latin-1 is ignored (logged once). A missing or malformed claim gives no roles.",
    ),
    cfg.StrOpt("user_id_claim", default="sub", help="Claim path of X-User-Id."),
    cfg.StrOpt("user_name_claim", default="preferred_username", help="Claim path of X-User-Name."),
    cfg.StrOpt("project_id_claim", default="project_id", help="Claim path of X-Project-Id."),
    cfg.StrOpt("project_name_claim", default="project_name", help="Claim path of X-Project-Name."),
    cfg.StrOpt(
        "user_domain_id_claim",
        default="user_domain_id",
        help="Claim path of X-User-Domain-Id (domain_id applies when it is absent).",
    ),
    cfg.StrOpt(
        "project_domain_id_claim",
        default="project_domain_id",
        help="Claim path of X-Project-Domain-Id (domain_id applies when it is absent).",
    ),
    cfg.StrOpt(
        "domain_id",
        help="Domain id of this issuer's users and projects when the token names none "
        "(issuer-to-domain mapping).",
    ),
    cfg.StrOpt(
        "system_scope_claim",
        help="Claim path whose value 'all' makes the token system-scoped "
        "(OpenStack-System-Scope: all). Unset: never system-scoped.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point of ``oslo-config-generator --namespace propguard.jwt``.

    One issuer's options are shown in ``[propguard_jwt]``; with ``issuers``
    set they go in ``[propguard_jwt:<name>]`` instead.
    """
    return [(GROUP, [*FILTER_OPTS, *ISSUER_OPTS])]
