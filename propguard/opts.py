"""oslo.config options of the ``[propguard]`` group, and ``list_opts()`` for the generator.

The filter reads each option from its paste section first (local conf) and
otherwise from oslo.config (``[propguard]`` in glance-api.conf), the same
precedence oslo.middleware's ``ConfigurableMiddleware`` uses, but without
writing overrides into the shared ``cfg.CONF``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oslo_config import cfg

from propguard import decisions as decision_opts
from propguard.glance.collation import COLLATIONS
from propguard.relations import opts as relations_opts

GROUP = "propguard"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "rules_file",
        help="Path of the property-protection rules file (Glance's property_protection_file "
        "format). Required: the filter refuses to start without readable, valid rules.",
    ),
    cfg.StrOpt(
        "rule_format",
        default="roles",
        choices=[
            (
                "roles",
                "values are comma-separated roles; service:<role> names a service-token role",
            ),
            ("policies", "values are oslo.policy rule names"),
        ],
        help="How the values of the rules file are read (Glance's property_protection_rule_format).",
    ),
    cfg.StrOpt(
        "policy_file",
        help="oslo.policy YAML file in which policies-format rule names are looked up (together "
        "with the registered defaults of policy_namespaces). Usually glance-api's policy.yaml.",
    ),
    cfg.ListOpt(
        "policy_dirs",
        default=["policy.d"],
        help="Directories whose policy files override policy_file, read as oslo.policy reads "
        "[oslo_policy] policy_dirs (every file not starting with a dot, in name order). A "
        "relative directory is taken next to policy_file; one that does not exist is skipped. "
        "Their files are watched for changes like policy_file.",
    ),
    cfg.ListOpt(
        "policy_namespaces",
        default=["glance"],
        help="oslo.policy.policies entry-point namespaces whose registered defaults define rule "
        "names (e.g. glance, propguard). A name defined nowhere is a load error.",
    ),
    cfg.ListOpt(
        "service_token_roles",
        default=["service"],
        help="A confirmed X-Service-Token counts only if it carries one of these roles "
        "(propguard checks this itself, whatever keystonemiddleware's "
        "service_token_roles_required says).",
    ),
    cfg.StrOpt(
        "service_role_mode",
        default="strict",
        choices=[
            (
                "strict",
                "service roles count only where a rule names them (service:<role>, service_roles:<role>)",
            ),
            ("union", "Glance-compatible: service roles also count as user roles"),
        ],
        help="How service-token roles take part in decisions.",
    ),
    cfg.BoolOpt(
        "trust_identity_headers",
        default=False,
        help="Trust X-Identity-Status/X-Roles/X-Service-* headers even when no keystonemiddleware "
        "auth_token (or propguard token filter) ran before this filter. Only for a gateway that "
        "validates tokens and strips these headers from clients; otherwise callers could forge "
        "roles.",
    ),
    cfg.ListOpt(
        "protect_core_attributes",
        default=[],
        help="Core image attributes to put under the rules as if they were properties: "
        "'locations' and/or 'direct_url' (e.g. readable only through a service token).",
    ),
    cfg.BoolOpt(
        "os_glance_section",
        default=True,
        help="Add a first, built-in section ^os_glance (everyone) as Glance 32.0.0+ does, so "
        "Glance's own os_glance_* properties stay visible. Anchored, unlike Glance's.",
    ),
    cfg.FloatOpt(
        "reload_interval",
        default=5.0,
        help="Seconds between checks of the rules and policy files for changes; a broken new "
        "file is refused and the last good rules stay in force. Negative disables.",
    ),
    cfg.BoolOpt(
        "reload_on_sighup",
        default=True,
        help="Also reload the rules on SIGHUP (the previous SIGHUP handler is still called).",
    ),
    cfg.IntOpt(
        "max_request_body_size",
        default=114688,
        min=1024,
        help="Largest JSON body (bytes) propguard reads on the image routes it checks; larger "
        "bodies get 413. Image data routes are streamed and never read.",
    ),
    cfg.IntOpt(
        "max_response_body_size",
        default=64 * 1024 * 1024,
        min=1024,
        help="Largest JSON image/list response (bytes) propguard filters; a larger one is "
        "refused (502) rather than passed on unfiltered.",
    ),
    cfg.BoolOpt(
        "allow_glance_download",
        default=False,
        help="Let POST /v2/images/{id}/import use the glance-download method. It copies the "
        "properties named by Glance's [glance_download_properties] extra_properties from "
        "another region's image, which propguard cannot check against the rules; refused "
        "with 403 unless this is true.",
    ),
    cfg.IntOpt(
        "list_scan_limit",
        default=5000,
        min=0,
        help="When a list filter on a readable property also matched images only by the "
        "database's case/accent-insensitive collation (MySQL/MariaDB), propguard drops them and "
        "reads further pages from Glance to fill the caller's page, up to this many more "
        "images per request.",
    ),
    cfg.IntOpt(
        "property_quota",
        default=128,
        min=-1,
        help="Most extra properties an image may hold as each caller sees it (-1: no limit), "
        "checked before Glance on create and on a PATCH that adds a property. Glance's own "
        "image_property_quota counts properties the caller cannot read, so its 413 tells "
        "how many an image holds: set it to -1 in glance-api.conf (propguard warns at "
        "start when it is not).",
    ),
    cfg.DictOpt(
        "inject_properties",
        default={},
        help="Properties set on every image a non-exempt caller creates (POST /v2/images, and "
        "the image_properties of an import task), whatever the request sent for those names: "
        "name:value,name:value (the first ':' ends the name; a value cannot contain ','). "
        "Values may use {user_id}, {project_id}, {user_domain_id}, {project_domain_id} and, "
        "from a confirmed service token, {service_user_id}, {service_project_id} (empty "
        "without one). The caller needs no create right for them; protect them with the rules.",
    ),
    cfg.ListOpt(
        "inject_ignore_roles",
        default=["admin"],
        help="A caller with one of these roles gets no injected properties (as Glance's "
        "[inject_metadata_properties] ignore_user_roles).",
    ),
    cfg.ListOpt(
        "inject_service_roles",
        default=[],
        help="A request relayed with a confirmed service token carrying one of these roles gets "
        "no injected properties either.",
    ),
    cfg.StrOpt(
        "name_collation",
        default="auto",
        choices=["auto", *COLLATIONS],
        help="How Glance's database compares property names. On MySQL/MariaDB names that "
        "differ in case, accents or trailing spaces are one key (Glance's schema: "
        "utf8mb3_general_ci): propguard then decides every spelling as its canonical one and "
        "finds stored names the way the database does. auto: from glance-api's [database] "
        "connection (MySQL/MariaDB -> utf8mb3_general_ci, SQLite/PostgreSQL -> binary); "
        "where it cannot be read (propguard serve, no connection set) propguard refuses to "
        "start: set binary or the collation there. mysql_any: "
        "equates whatever any shipped MySQL collation equates.",
    ),
    cfg.IntOpt(
        "limit_param_default",
        default=25,
        min=1,
        help="Glance's page size when a list request gives no limit. Must equal glance-api's "
        "[DEFAULT] limit_param_default: propguard refills list pages to this size.",
    ),
    cfg.IntOpt(
        "api_limit_max",
        default=1000,
        min=1,
        help="Glance's largest page. Must equal glance-api's [DEFAULT] api_limit_max.",
    ),
    cfg.IntOpt(
        "name_cache_size",
        default=10000,
        min=0,
        help="Bound of the property name -> section cache.",
    ),
    cfg.IntOpt(
        "decision_cache_size",
        default=65536,
        min=0,
        help="Bound of the (caller, section, operation) -> decision cache.",
    ),
    *relations_opts.OPTS,
    *decision_opts.OPTS,
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for ``oslo-config-generator --namespace propguard``: every group
    of propguard's (the filter with relations, the notification driver and
    service, the JWT filter). ``propguard.notifications`` and ``propguard.jwt``
    list one part each, for a config file that needs only that part."""
    from propguard.jwt import opts as jwt_opts
    from propguard.notifications import opts as notification_opts

    return [(GROUP, list(OPTS)), *notification_opts.list_opts(), *jwt_opts.list_opts()]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(OPTS, group=GROUP)


def resolve(
    local_conf: Mapping[str, Any], conf: cfg.ConfigOpts | None = None, *, strict: bool = True
) -> dict[str, Any]:
    """Effective option values: paste local conf first, then ``conf`` (default ``cfg.CONF``).

    Values from paste are strings and are converted with the option's own type,
    so a bad value fails the same way as in a config file. A bad value in either
    place raises :class:`ValueError` naming the option and the value: the
    filter then does not start (fail closed), it never falls back to a default.
    So does an unknown option, unless ``strict`` is false (``propguard check``
    reports each unknown option itself and goes on).
    """
    if conf is None:
        conf = _paste_project_conf(local_conf) or cfg.CONF
    register_opts(conf)  # idempotent for the same Opt objects
    if strict:
        check_config_groups(conf, {GROUP: [opt.dest for opt in OPTS]})
    values = paste_values(local_conf, OPTS, "propguard")
    for opt in OPTS:
        if opt.dest not in values:
            values[opt.dest] = _from_oslo_config(conf, opt)
    for key in ("rules_file", "policy_file", "shadow_rules_file"):
        values[key] = locate(values[key], conf)
    return values


def did_you_mean(key: str, names: Iterable[str]) -> str:
    """`` (did you mean 'rule_format'?)`` for a misspelt option name, or ``''``."""
    close = difflib.get_close_matches(key.strip().lower(), list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_message(where: str, unknown: Iterable[str], names: Iterable[str]) -> str:
    """``unknown option(s) in WHERE: a (did you mean 'b'?), c``: one error for all of them."""
    names = list(names)
    listed = ", ".join(f"{key}{did_you_mean(key, names)}" for key in sorted(unknown))
    return f"unknown option(s) in {where}: {listed}"


def check_paste_keys(local_conf: Mapping[str, Any], names: Iterable[str], what: str) -> None:
    """Refuse a paste-section key that is no option of ``what`` (fail closed on a typo).

    ``rule_formt = policies`` read as "not set" would run the filter with the
    default format and deny (or allow) what the operator did not mean.
    """
    known = set(names) | _PASTE_KEYS
    unknown = [k for k in local_conf if k not in known]
    if unknown:
        raise ValueError(unknown_message(f"the {what} paste section", unknown, names))


def config_files_of(conf: cfg.ConfigOpts) -> list[str]:
    """The files ``conf`` was parsed from (``--config-file`` and ``--config-dir``), in order.

    Empty for a ``ConfigOpts`` that was never parsed (unit tests, a service
    not started through oslo.config).
    """
    try:
        files = list(conf.config_file or [])
        dirs = conf.config_dir or []
    except (cfg.Error, AttributeError):
        return []
    for folder in [dirs] if isinstance(dirs, str) else list(dirs):
        if os.path.isdir(folder):
            files += sorted(
                os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".conf")
            )
    return files


def raw_sections(path: str) -> dict[str, dict[str, list[str]]]:
    """An oslo.config file's sections as oslo.config's own parser reads them (no options needed).

    oslo.config ignores a key no option is registered for; reading the raw
    sections, as ``oslo-config-validator`` does, finds it.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    cfg.ConfigParser(path, sections).parse()
    return sections


def check_config_groups(
    conf: cfg.ConfigOpts | Sequence[str], groups: Mapping[str, Iterable[str]]
) -> None:
    """Refuse a key in one of ``groups`` of the config files that is no option of that group.

    ``conf`` is a parsed ``ConfigOpts`` (its files are read again) or a list
    of file names. Raises :class:`ValueError` naming file, group and key,
    with a did-you-mean.
    """
    files = list(conf) if isinstance(conf, (list, tuple)) else config_files_of(conf)
    problems = []
    for path in files:
        try:
            sections = raw_sections(path)
        except (OSError, cfg.Error, ValueError):
            continue  # oslo.config itself reports an unreadable or broken file
        for group, names in groups.items():
            names = list(names)
            unknown = [k for k in sections.get(group, {}) if k not in names]
            if unknown:
                problems.append(unknown_message(f"[{group}] of {path}", unknown, names))
    if problems:
        raise ValueError("; ".join(problems))


def paste_values(
    local_conf: Mapping[str, Any], options: Sequence[cfg.Opt], what: str
) -> dict[str, Any]:
    """The options set in a paste section, converted by each option's oslo.config type.

    An unknown key or a bad value raises :class:`ValueError` naming it (the
    filter or app then does not start); an option not set is left out.
    """
    check_paste_keys(local_conf, [opt.dest for opt in options], what)
    values: dict[str, Any] = {}
    for opt in options:
        if opt.dest in local_conf:
            raw = local_conf[opt.dest]
            try:
                values[opt.dest] = opt.type(raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise ValueError(f"{what} option {opt.dest}={raw!r}: {exc}") from exc
    return values


def _paste_project_conf(local_conf: Mapping[str, Any]) -> cfg.ConfigOpts | None:
    """A private ConfigOpts for ``oslo_config_project`` (and ``oslo_config_file``), as
    oslo.middleware's ``ConfigurableMiddleware`` builds one; None without it."""
    project = local_conf.get("oslo_config_project")
    if not project:
        return None
    files = [local_conf["oslo_config_file"]] if local_conf.get("oslo_config_file") else None
    conf = cfg.ConfigOpts()
    conf([], project=project, default_config_files=files, validate_default_values=True)
    return conf


def _from_oslo_config(conf: cfg.ConfigOpts, opt: cfg.Opt) -> Any:
    """The value of ``opt`` in ``[propguard]``; a set but invalid value raises ValueError.

    oslo.config converts a value only when it is read, so a bad one in
    glance-api.conf (``rule_format = policy``, ``reload_interval = 5s``)
    surfaces here as ``ConfigFileValueError`` (``ConfigSourceValueError`` from
    an environment variable; ``NoSuchOptError``/``NoSuchGroupError`` for a
    ``$reference`` to nothing, ``TemplateSubstitutionError`` for a bad one).
    None of those may turn into the default: ``rule_format = policy`` read as
    ``roles`` would deny everything, ``service_role_mode = Union`` read as
    ``strict`` would silently change who may do what.
    """
    try:
        return getattr(conf[GROUP], opt.dest)
    except cfg.Error as exc:
        if _not_there(exc, opt):
            return opt.default
        raise ValueError(_invalid_value_message(conf, opt, exc)) from exc


def _not_there(exc: cfg.Error, opt: cfg.Opt) -> bool:
    """Is ``exc`` oslo.config saying that this option itself cannot be read at all?

    An option that is registered but not set is no error (its default comes
    back), even on a ``ConfigOpts`` that was never parsed (glance-api not
    started through oslo.config, unit tests). What remains is ``[propguard]``
    or the option missing from ``conf`` (``NoSuchGroupError``/``NoSuchOptError``
    naming *it*) or ``NotInitializedError``: then the default applies. The same
    two "no such" errors also come from a *set* value whose ``$other`` or
    ``${group.other}`` reference does not exist; those name the missing
    reference, not this option, and are bad values.
    """
    if isinstance(exc, cfg.NotInitializedError):
        return True
    if isinstance(exc, cfg.NoSuchGroupError):
        return exc.group_name == GROUP
    if isinstance(exc, cfg.NoSuchOptError):
        group = getattr(exc.group, "name", exc.group)
        return exc.opt_name == opt.dest and group == GROUP
    return False


def _invalid_value_message(conf: cfg.ConfigOpts, opt: cfg.Opt, exc: cfg.Error) -> str:
    raw, source = _raw_setting(conf, opt.dest)
    if raw is None:
        return f"propguard option [{GROUP}] {opt.dest} is not valid: {exc}"
    reason = str(exc)
    try:
        opt.type(raw)
    except ValueError as type_error:
        reason = str(type_error) or reason
    where = f" (from {source})" if source else ""
    return f"propguard option [{GROUP}] {opt.dest} = {raw!r}{where} is not valid: {reason}"


def _raw_setting(conf: cfg.ConfigOpts, name: str) -> tuple[str | None, str | None]:
    """The text ``[propguard] name`` was given, and where: only for the error message.

    oslo.config has no public way to read a value without converting it, so
    the same sources are read again through a scratch ``ConfigOpts`` in which
    the option is a plain string: the files and directories ``conf`` was
    parsed with, and the environment (``OS_PROPGUARD__<NAME>``), with
    oslo.config's own precedence. ``(None, None)`` if that fails.
    """
    try:
        files = list(conf.config_file or [])
        dirs = conf.config_dir or []
        dirs = [dirs] if isinstance(dirs, str) else list(dirs)
        scratch = cfg.ConfigOpts()
        scratch.register_opt(cfg.StrOpt(name), group=GROUP)
        scratch([], project=conf.project, default_config_files=files, default_config_dirs=dirs)
        raw = scratch[GROUP][name]
        location = scratch.get_location(name, GROUP)
    except (cfg.Error, AttributeError, OSError):
        return None, None
    if raw is None:
        return None, None
    return str(raw), getattr(location, "detail", None)


def locate(path: str | None, conf: cfg.ConfigOpts | None = None) -> str | None:
    """Resolve a relative file name as Glance resolves ``property_protection_file``.

    An existing path (absolute, or relative to the working directory) is kept;
    otherwise oslo.config's ``find_file`` looks in the service's configuration
    directories (e.g. ``/etc/glance``). A name found nowhere is returned as
    given, so loading it fails with that name in the error.
    """
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    conf = cfg.CONF if conf is None else conf
    try:
        found = conf.find_file(path)
    except cfg.Error:
        found = None
    return found or path


#: Keys paste.deploy may pass that are not ours (globals, oslo.middleware style hooks).
_PASTE_KEYS = {
    "paste.filter_factory",
    "paste.app_factory",
    "__file__",
    "here",
    "oslo_config_project",
    "oslo_config_file",
}
