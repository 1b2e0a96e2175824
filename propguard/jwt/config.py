"""Options -> a validated configuration; any mistake stops the filter at load, naming the option.

Precedence (see :mod:`propguard.jwt.opts`): the paste section, then
oslo.config (``[propguard_jwt]``, ``[propguard_jwt:<issuer>]``), then the
default. Values from paste are converted with the option's own oslo.config
type, so ``leeway = 5s`` fails the same way in either place. Nothing falls
back to a default on a bad value, and nothing here is lenient about keys:
an issuer without a usable key, an algorithm of ``none``, HS and public-key
algorithms in one issuer, a key bound to an algorithm the issuer does not
accept, a duplicate ``iss``... are all load errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from propguard.jwt import opts
from propguard.jwt.claims import ClaimMapping, ClaimPath, parse_path, role_paths
from propguard.jwt.jwks import RemoteJWKS, check_url
from propguard.jwt.keys import (
    BoundKey,
    KeyIndex,
    KeyProblem,
    is_hmac,
    keys_from_jwks,
    load_hmac_secret,
    load_pem_public_key,
)

_PASTE_KEYS = {
    "paste.filter_factory",
    "__file__",
    "here",
    "oslo_config_project",
    "oslo_config_file",
}
_FILTER_NAMES = {opt.dest for opt in opts.FILTER_OPTS}
_ISSUER_NAMES = {opt.dest for opt in opts.ISSUER_OPTS}


class ConfigError(ValueError):
    """A configuration the filter refuses to start with (the message names the option)."""


@dataclass
class IssuerConfig:
    """One trusted issuer: what its tokens must say and which keys verify them."""

    name: str
    iss: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    static_keys: KeyIndex
    remote: RemoteJWKS | None
    leeway: int
    max_lifetime: int
    required_claims: tuple[str, ...]
    allowed_types: frozenset[str]
    token_use: frozenset[str]
    mapping: ClaimMapping

    def key_indexes(self) -> tuple[KeyIndex, ...]:
        return (
            (self.static_keys,)
            if self.remote is None
            else (self.static_keys, self.remote.current())
        )


@dataclass
class FilterConfig:
    issuers: dict[str, IssuerConfig]  # by exact iss
    delay_auth_decision: bool = False
    service_token_roles: frozenset[str] = frozenset({"service"})
    allow_expired_window: int = 172800
    max_token_size: int = 16384
    www_authenticate_realm: str | None = None
    token_cache_size: int = 4096
    token_cache_ttl: int = 300
    remotes: list[RemoteJWKS] = field(default_factory=list)


def load(
    local_conf: Mapping[str, Any], conf: cfg.ConfigOpts | None = None, *, start: bool = True
) -> FilterConfig:
    """Read and check every option; with ``start``, fetch JWKS URLs and start their refreshers."""
    conf = _project_conf(local_conf) if conf is None else conf
    reader = _Reader(local_conf, conf)
    names = reader.filter_value("issuers")
    _check_unknown(local_conf, names)
    _check_unknown_in_files(conf, names)
    if len(set(names)) != len(names):
        raise ConfigError("propguard jwt option issuers: a name is listed twice")
    issuers: dict[str, IssuerConfig] = {}
    for name in names or ["default"]:
        issuer = _issuer(reader, name if names else None)
        if issuer.iss in issuers:
            raise ConfigError(
                f"propguard jwt option {reader.label('iss', issuer.name)}: iss {issuer.iss!r} "
                f"is also issuer {issuers[issuer.iss].name!r}'s"
            )
        issuers[issuer.iss] = issuer
    roles = frozenset(
        r.strip().lower() for r in reader.filter_value("service_token_roles") if r.strip()
    )
    if not roles:
        raise ConfigError("propguard jwt option service_token_roles: must name at least one role")
    result = FilterConfig(
        issuers=issuers,
        delay_auth_decision=reader.filter_value("delay_auth_decision"),
        service_token_roles=roles,
        allow_expired_window=reader.filter_value("allow_expired_window"),
        max_token_size=reader.filter_value("max_token_size"),
        www_authenticate_realm=reader.filter_value("www_authenticate_realm"),
        token_cache_size=reader.filter_value("token_cache_size"),
        token_cache_ttl=reader.filter_value("token_cache_ttl"),
        remotes=[i.remote for i in issuers.values() if i.remote is not None],
    )
    if start:
        for remote in result.remotes:
            remote.start()
    return result


def _check_unknown(local_conf: Mapping[str, Any], names: list[str]) -> None:
    unknown = []
    for key in local_conf:
        if key in _PASTE_KEYS or key in _FILTER_NAMES:
            continue
        prefix, dot, option = key.partition(".")
        if names and dot and prefix in names and option in _ISSUER_NAMES:
            continue
        if not names and key in _ISSUER_NAMES:
            continue
        unknown.append(key)
    if unknown:
        unknown = [f"{k}{_close(k, names)}" for k in unknown]
        hint = (
            " (with issuers set, issuer options are '<name>.<option>')"
            if names
            else " (issuer options are '<option>', or '<name>.<option>' with issuers set)"
        )
        raise ConfigError(
            f"unknown propguard jwt option(s) in paste config: {', '.join(sorted(unknown))}{hint}"
        )


def _close(key: str, names: list[str]) -> str:
    """A did-you-mean for a misspelt paste key (``isss`` -> ``iss``, ``a.aud`` names)."""
    from propguard.opts import did_you_mean

    prefix, dot, option = key.partition(".")
    if names and dot and prefix in names:
        return did_you_mean(option, _ISSUER_NAMES)
    return did_you_mean(key, _FILTER_NAMES | (set() if names else _ISSUER_NAMES))


def _check_unknown_in_files(conf: cfg.ConfigOpts, names: list[str]) -> None:
    """An unknown key in ``[propguard_jwt]`` or ``[propguard_jwt:<issuer>]`` of the config files.

    oslo.config ignores keys no option is registered for, so a typo there
    (``audience = ...`` for ``aud``) would silently leave the default in
    force; the raw sections are read as ``oslo-config-validator`` reads them.
    """
    from propguard.opts import check_config_groups

    groups = {opts.GROUP: sorted(_FILTER_NAMES | (set() if names else _ISSUER_NAMES))}
    groups.update({f"{opts.GROUP}:{name}": sorted(_ISSUER_NAMES) for name in names})
    try:
        check_config_groups(conf, groups)
    except ValueError as exc:
        raise ConfigError(f"propguard jwt: {exc}") from None
    _check_unlisted_issuer_sections(conf, names)


def _check_unlisted_issuer_sections(conf: cfg.ConfigOpts, names: list[str]) -> None:
    """A ``[propguard_jwt:<name>]`` section whose name ``issuers`` does not list.

    Its options would be read by nothing: the operator believes an issuer is
    configured (or re-configured, a new key, a shorter leeway) while its
    tokens are refused, or, worse, an old section stays in force under a
    listed name spelt differently. Refused at start, naming file and section.
    """
    from propguard.opts import config_files_of, raw_sections

    prefix = f"{opts.GROUP}:"
    problems = []
    for path in config_files_of(conf):
        try:
            sections = raw_sections(path)
        except (OSError, cfg.Error, ValueError):
            continue  # oslo.config itself reports an unreadable or broken file
        for section in sections:
            if section.startswith(prefix) and section[len(prefix) :] not in names:
                listed = ", ".join(names) if names else "none: issuers is not set"
                problems.append(
                    f"[{section}] of {path}: issuer {section[len(prefix):]!r} is not listed in "
                    f"[{opts.GROUP}] issuers ({listed}), so its options would be ignored"
                )
    if problems:
        raise ConfigError("propguard jwt: " + "; ".join(problems))


class _Reader:
    """Option values from paste local conf, else oslo.config, else the default."""

    def __init__(self, local_conf: Mapping[str, Any], conf: cfg.ConfigOpts) -> None:
        self.local = local_conf
        self.conf = conf
        self.conf.register_opts(opts.FILTER_OPTS, group=opts.GROUP)

    @staticmethod
    def label(name: str, issuer: str | None) -> str:
        return f"{issuer}.{name}" if issuer else name

    def filter_value(self, name: str) -> Any:
        return self._value(_opt(opts.FILTER_OPTS, name), name, opts.GROUP)

    def issuer_value(self, name: str, issuer: str | None) -> Any:
        opt = _opt(opts.ISSUER_OPTS, name)
        group = f"{opts.GROUP}:{issuer}" if issuer else opts.GROUP
        self.conf.register_opts(opts.ISSUER_OPTS, group=group)
        return self._value(opt, self.label(name, issuer), group)

    def _value(self, opt: cfg.Opt, key: str, group: str) -> Any:
        if key in self.local:
            raw = self.local[key]
            try:
                return opt.type(raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise ConfigError(f"propguard jwt option {key} = {raw!r}: {exc}") from exc
        try:
            return getattr(self.conf[group], opt.dest)
        except (cfg.NotInitializedError, cfg.NoSuchGroupError, cfg.NoSuchOptError):
            return opt.default
        except cfg.Error as exc:
            raise ConfigError(f"propguard jwt option [{group}] {opt.dest}: {exc}") from exc


def _opt(options: list[cfg.Opt], name: str) -> cfg.Opt:
    return next(o for o in options if o.dest == name)


def _project_conf(local_conf: Mapping[str, Any]) -> cfg.ConfigOpts:
    """oslo.middleware's convention: ``oslo_config_project`` in paste names a private config."""
    project = local_conf.get("oslo_config_project")
    if not project:
        return cfg.CONF
    files = [local_conf["oslo_config_file"]] if local_conf.get("oslo_config_file") else None
    conf = cfg.ConfigOpts()
    conf([], project=project, default_config_files=files, validate_default_values=True)
    return conf


def _pair(text: str, key: str) -> tuple[str, str]:
    alg, sep, path = text.partition(":")
    alg, path = alg.strip(), path.strip()
    if not sep or not path or alg not in opts.ALGORITHMS:
        raise ConfigError(
            f"propguard jwt option {key}: {text!r} must be ALG:PATH with ALG one of "
            f"{', '.join(opts.ALGORITHMS)}"
        )
    return alg, path


def _issuer(reader: _Reader, name: str | None) -> IssuerConfig:
    def value(option: str) -> Any:
        return reader.issuer_value(option, name)

    def fail(option: str, message: str) -> ConfigError:
        return ConfigError(f"propguard jwt option {reader.label(option, name)}: {message}")

    iss = value("iss")
    if not iss:
        raise fail("iss", "required (the issuer's exact 'iss' claim)")
    audiences = tuple(a for a in value("audiences") if a)
    if not audiences:
        raise fail("audiences", "required (at least one accepted 'aud')")
    try:
        algorithms = tuple(dict.fromkeys(value("algorithms")))
    except ConfigError as exc:
        if "'none'" in str(exc).lower():
            raise fail("algorithms", f"{exc}; 'none' (unsigned tokens) is never accepted") from exc
        raise
    if not algorithms:
        raise fail("algorithms", f"required: a list of {', '.join(opts.ALGORITHMS)} ('none' never)")
    if any(is_hmac(a) for a in algorithms) and not all(is_hmac(a) for a in algorithms):
        raise fail(
            "algorithms", "HMAC (HS*) and public-key algorithms cannot be mixed in one issuer"
        )

    keys: list[BoundKey] = []
    for text in value("public_key_files"):
        alg, path = _pair(text, reader.label("public_key_files", name))
        if alg not in algorithms:
            raise fail("public_key_files", f"{text!r}: {alg} is not in algorithms")
        try:
            keys.append(load_pem_public_key(alg, path))
        except KeyProblem as exc:
            raise fail("public_key_files", str(exc)) from exc
    if value("hmac_secret_file"):
        alg, path = _pair(value("hmac_secret_file"), reader.label("hmac_secret_file", name))
        if alg not in algorithms:
            raise fail("hmac_secret_file", f"{alg} is not in algorithms")
        try:
            keys.append(load_hmac_secret(alg, path))
        except KeyProblem as exc:
            raise fail("hmac_secret_file", str(exc)) from exc
    if value("jwks_file"):
        keys.extend(_jwks_file(value("jwks_file"), algorithms, fail))
    remote = None
    if value("jwks_url"):
        if any(is_hmac(a) for a in algorithms):
            raise fail("jwks_url", "HMAC issuers take their secret from hmac_secret_file only")
        try:
            check_url(value("jwks_url"))
        except ValueError as exc:
            raise fail("jwks_url", str(exc)) from exc
        if value("jwks_max_stale") < value("jwks_refresh_interval"):
            raise fail(
                "jwks_max_stale",
                f"{value('jwks_max_stale')} s is shorter than jwks_refresh_interval "
                f"({value('jwks_refresh_interval')} s): the keys would go stale between two "
                "routine fetches",
            )
        try:
            remote = RemoteJWKS(
                value("jwks_url"),
                algorithms,
                refresh_interval=value("jwks_refresh_interval"),
                cooldown=value("jwks_refetch_cooldown"),
                max_stale=value("jwks_max_stale"),
                timeout=value("jwks_timeout"),
                cafile=value("jwks_cafile"),
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise fail("jwks_cafile", f"{value('jwks_cafile')}: {exc}") from exc
    if not keys and remote is None:
        raise fail(
            "public_key_files",
            "the issuer has no key: set public_key_files, jwks_file, jwks_url or hmac_secret_file",
        )
    required = tuple(dict.fromkeys(["iss", "aud", *(c for c in value("required_claims") if c)]))
    try:
        mapping = ClaimMapping(
            roles=role_paths(value("roles_claims")),
            user_id=parse_path(value("user_id_claim")),
            user_name=_optional_path(value("user_name_claim")),
            project_id=_optional_path(value("project_id_claim")),
            project_name=_optional_path(value("project_name_claim")),
            user_domain_id=_optional_path(value("user_domain_id_claim")),
            project_domain_id=_optional_path(value("project_domain_id_claim")),
            domain_id=value("domain_id") or None,
            system_scope=_optional_path(value("system_scope_claim")),
        )
    except ValueError as exc:
        raise fail("roles_claims", str(exc)) from exc
    token_use = frozenset(value("token_use"))
    if not token_use:
        raise fail("token_use", "must contain user, service or both")
    return IssuerConfig(
        name=name or "default",
        iss=iss,
        audiences=audiences,
        algorithms=algorithms,
        static_keys=KeyIndex(keys),
        remote=remote,
        leeway=value("leeway"),
        max_lifetime=value("max_lifetime"),
        required_claims=required,
        allowed_types=frozenset(value("allowed_types")),
        token_use=token_use,
        mapping=mapping,
    )


def _optional_path(text: str | None) -> ClaimPath | None:
    return parse_path(text) if text else None


def _jwks_file(path: str, algorithms: tuple[str, ...], fail: Any) -> list[BoundKey]:
    import json

    if any(is_hmac(a) for a in algorithms):
        raise fail("jwks_file", "HMAC issuers take their secret from hmac_secret_file only")
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise fail("jwks_file", f"{path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise fail("jwks_file", f"{path}: not JSON ({exc})") from exc
    try:
        keys = keys_from_jwks(document, algorithms, path)
    except KeyProblem as exc:
        raise fail("jwks_file", str(exc)) from exc
    if not keys:
        raise fail("jwks_file", f"{path}: no signature key usable with {', '.join(algorithms)}")
    return keys
