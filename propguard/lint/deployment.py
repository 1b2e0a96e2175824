"""``propguard check``: what is wrong with a deployment, not only with its rules file.

Why: a rules file can be perfect while the deployment leaks. propguard placed
before ``authtoken`` reads no identity; missing from one authenticating
pipeline, it filters nothing there; Glance's own ``property_protection_file``
next to it loses data; Glance's ``image_property_quota`` answers "how many
properties does this image hold" past propguard; a typo in an option is
silently ignored by oslo.config. Given glance-api's paste file and config files
(or ``propguard serve``'s serve.ini and config), this module reports each as a
finding (``PG4xx``, file and line), then lints the rules and policy files the
deployment configures, exactly as configured (:func:`propguard.lint.lint_run`).

What it does not check: that the files are the ones the running service
reads (it reads the paths given), Keystone's actual roles, the database's
actual collation, the message bus, anything a request would show.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from propguard import opts
from propguard.glance.collation import folding, folding_for_connection
from propguard.rules.model import Position, Problem, Severity

#: How a paste section names propguard's filter, the auth layers, and the proxy app.
PROPGUARD_FACTORIES = (
    "egg:propguard#propguard",
    "egg:propguard",
    "propguard.middleware:filter_factory",
)
AUTH_FACTORIES = (
    "keystonemiddleware.auth_token:filter_factory",
    "egg:keystonemiddleware#auth_token",
    "egg:propguard#jwt",
    "propguard.jwt.filter:filter_factory",
)
JWT_FACTORIES = ("egg:propguard#jwt", "propguard.jwt.filter:filter_factory")
PROXY_FACTORIES = ("egg:propguard#proxy", "propguard.proxy.app:app_factory")
GLANCE_PIPELINE_FACTORY = "glance.api:pipeline_factory"
#: Glance 33's defaults for the options propguard must agree with.
GLANCE_DEFAULTS = {
    "image_property_quota": "128",
    "limit_param_default": "25",
    "api_limit_max": "1000",
}


@dataclass
class Setting:
    """One ``key = value`` of an INI file, where it is."""

    value: str
    position: Position


@dataclass
class IniFile:
    """An INI file's settings by section, with positions (later files override earlier)."""

    sections: dict[str, dict[str, Setting]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Setting | None:
        return self.sections.get(section, {}).get(key)


_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_KEY = re.compile(r"^([^\s#;=:][^=:]*?)\s*[=:]\s?(.*)$")


def read_ini(paths: Iterable[str]) -> IniFile:
    """Settings of INI files, merged in order, each with its file and line.

    A plain line reader, not configparser: a finding must name the line, and
    oslo.config's and paste.deploy's files are both this simple form.
    """
    merged = IniFile()
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        section = None
        for number, line in enumerate(lines, 1):
            head = _SECTION.match(line)
            if head:
                section = head.group(1).strip()
                merged.sections.setdefault(section, {})
                continue
            if section is None or line[:1].isspace():
                continue
            match = _KEY.match(line)
            if match:
                key = match.group(1).strip()
                merged.sections[section][key] = Setting(
                    match.group(2).strip(), Position(path, number, 1)
                )
    return merged


@dataclass
class Deployment:
    """What ``propguard check`` is given."""

    paste_ini: str
    config_files: Sequence[str] = ()
    #: glance-api's own config (serve mode: glance-api.conf, if the operator has it)
    glance_config_files: Sequence[str] | None = None
    paste_filter: str | None = None


def _error(code: str, where: Position, message: str, hint: str | None = None) -> Problem:
    return Problem(code, Severity.ERROR, where, message, hint)


class Checker:
    """The deployment findings; :attr:`values` are the filter's resolved options."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment
        self.paste = read_ini([deployment.paste_ini])
        self.conf = read_ini(deployment.config_files)
        serve = any(self._factory(s) in PROXY_FACTORIES for s in self.paste.sections)
        glance_files = deployment.glance_config_files
        if glance_files is None:
            glance_files = () if serve else deployment.config_files
        self.glance = read_ini(glance_files) if glance_files else None
        self.problems: list[Problem] = []
        self.values: dict[str, Any] | None = None

    # -- paste ---------------------------------------------------------------------

    def _factory(self, section: str) -> str:
        options = self.paste.sections.get(section, {})
        for key in ("use", "paste.filter_factory", "paste.app_factory", "paste.composite_factory"):
            if key in options:
                return options[key].value.strip()
        return ""

    def _filters(self, factories: Sequence[str]) -> set[str]:
        return {
            s.split(":", 1)[1].strip()
            for s in self.paste.sections
            if s.startswith("filter:") and self._factory(s) in factories
        }

    def pipelines(self) -> list[tuple[str, list[str], Position]]:
        """Every pipeline of the paste file: ``[pipeline:X]`` and Glance's flavor composites."""
        found = []
        for name, options in self.paste.sections.items():
            if name.startswith("pipeline:") and "pipeline" in options:
                setting = options["pipeline"]
                found.append((name.split(":", 1)[1], setting.value.split(), setting.position))
            elif name.startswith("composite:") and self._factory(name) == GLANCE_PIPELINE_FACTORY:
                for key, setting in options.items():
                    if key not in ("use", "paste.composite_factory"):
                        label = f"{name.split(':', 1)[1]}/{key}"
                        found.append((label, setting.value.split(), setting.position))
        return found

    def check_pipelines(self) -> None:
        guards = self._filters(PROPGUARD_FACTORIES)
        auths = self._filters(AUTH_FACTORIES)
        where = Position(self.d.paste_ini, 1)
        if not guards:
            self.problems.append(
                _error(
                    "PG401",
                    where,
                    "no [filter:...] section builds propguard's filter (egg:propguard#propguard)",
                    "add [filter:propguard] use = egg:propguard#propguard and put it after "
                    "the auth layer of every pipeline",
                )
            )
            return
        trust = bool(self.values and self.values.get("trust_identity_headers"))
        used = self._used_flavor()
        for label, names, position in self.pipelines():
            auth_at = [i for i, n in enumerate(names) if n in auths]
            guard_at = [i for i, n in enumerate(names) if n in guards]
            if auth_at and not guard_at:
                self.problems.append(
                    _error(
                        "PG401",
                        position,
                        f"pipeline {label} authenticates ({names[auth_at[0]]}) but has no "
                        "propguard: every property passes unfiltered there",
                        f"insert {sorted(guards)[0]} right after {names[auth_at[0]]}",
                    )
                )
            elif auth_at and guard_at and guard_at[0] < auth_at[0]:
                self.problems.append(
                    _error(
                        "PG402",
                        position,
                        f"pipeline {label}: {names[guard_at[0]]} comes before the auth layer "
                        f"{names[auth_at[0]]}: it sees no validated identity",
                        f"move {names[guard_at[0]]} after {names[auth_at[0]]}",
                    )
                )
            elif guard_at and not auth_at and not trust and (used is None or label == used):
                self.problems.append(
                    _error(
                        "PG403",
                        position,
                        f"pipeline {label} has propguard but no auth layer (authtoken or "
                        "propguard's jwt): no caller has a confirmed identity",
                        "put authtoken (keystonemiddleware) before propguard",
                    )
                )

    def _used_flavor(self) -> str | None:
        """Glance's pipeline label for ``[paste_deploy] flavor``, when it names one."""
        if self.glance is None:
            return None
        flavor = self.glance.get("paste_deploy", "flavor")
        key = flavor.value if flavor and flavor.value else "default"
        for label, _, _ in self.pipelines():
            if label.endswith(f"/{key}"):
                return label
        return None

    # -- options -------------------------------------------------------------------

    def _unknown(
        self, where: IniFile, section: str, names: Iterable[str], what: str, skip=()
    ) -> None:
        names = list(names)
        for key, setting in where.sections.get(section, {}).items():
            if key in names or key in skip:
                continue
            self.problems.append(
                _error(
                    "PG408",
                    setting.position,
                    f"unknown option {key!r} in [{section}]{what}: ignored, so its default applies",
                    opts.did_you_mean(key, names).strip(" ()") or "remove it",
                )
            )

    def check_unknown_options(self) -> None:
        from propguard.jwt import opts as jwt_opts
        from propguard.notifications import opts as notification_opts
        from propguard.proxy.app import PROXY_OPTS

        paste_keys = opts._PASTE_KEYS | {"use"}
        main = [o.dest for o in opts.OPTS]
        jwt = [o.dest for o in (*jwt_opts.FILTER_OPTS, *jwt_opts.ISSUER_OPTS)]
        for name in self._filters(PROPGUARD_FACTORIES):
            self._unknown(self.paste, f"filter:{name}", main, "", paste_keys)
        for name in self._filters(JWT_FACTORIES):
            section = f"filter:{name}"
            dotted = {k for k in self.paste.sections.get(section, {}) if "." in k[1:]}
            issuer_keys = {k for k in dotted if k.split(".", 1)[1] in jwt}
            self._unknown(self.paste, section, jwt, "", paste_keys | issuer_keys)
        for section in self.paste.sections:
            if section.startswith("app:") and self._factory(section) in PROXY_FACTORIES:
                self._unknown(self.paste, section, [o.dest for o in PROXY_OPTS], "", paste_keys)
        groups: dict[str, list[str]] = {
            opts.GROUP: main,
            notification_opts.OUTPUT_GROUP: [o.dest for o in notification_opts.OUTPUT_OPTS],
            notification_opts.SERVICE_GROUP: [o.dest for o in notification_opts.SERVICE_OPTS],
        }
        for section in self.conf.sections:
            if section == jwt_opts.GROUP or section.startswith(f"{jwt_opts.GROUP}:"):
                groups[section] = jwt
        for section, names in groups.items():
            self._unknown(self.conf, section, names, " of the config files")

    def resolve(self) -> None:
        """The filter's values as it resolves them (unknown keys already reported)."""
        from propguard.lint.filter_config import FilterConfigError, _paste_local_conf

        try:
            local = _paste_local_conf(self.d.paste_ini, self.d.paste_filter)
        except FilterConfigError:
            local = {}
        main = {o.dest for o in opts.OPTS}
        local = {k: v for k, v in local.items() if k in main or k in opts._PASTE_KEYS}
        conf = cfg.ConfigOpts()
        try:
            conf(
                [],
                project="propguard",
                default_config_files=list(self.d.config_files),
                default_config_dirs=[],
            )
            self.values = opts.resolve(local, conf, strict=False)
        except (cfg.Error, ValueError) as exc:
            self.problems.append(
                _error(
                    "PG409",
                    Position((list(self.d.config_files) or [self.d.paste_ini])[0], 1),
                    f"the filter does not start: {exc}",
                )
            )

    def check_glance_options(self) -> None:
        values = self.values
        if self.glance is None or values is None:
            return
        first = Position(self._first_glance_file(), 1)
        protection = self.glance.get("DEFAULT", "property_protection_file")
        if protection is not None and protection.value:
            self.problems.append(
                _error(
                    "PG404",
                    protection.position,
                    "Glance's own property_protection_file is set next to propguard: Glance "
                    "then drops properties the caller cannot see from every update (data loss)",
                    "remove property_protection_file from glance-api.conf; propguard enforces "
                    "the rules",
                )
            )
        quota = self._glance_value("image_property_quota")
        if values["property_quota"] != -1 and quota[0] != "-1":
            self.problems.append(
                _error(
                    "PG405",
                    quota[1] or first,
                    f"image_property_quota = {quota[0]} while propguard counts (property_quota "
                    f"= {values['property_quota']}): Glance's 413 tells a caller how many "
                    "properties an image holds, readable or not",
                    "set image_property_quota = -1 in glance-api.conf",
                )
            )
        for name in ("limit_param_default", "api_limit_max"):
            glance_value, where = self._glance_value(name)
            if str(values[name]) != glance_value:
                self.problems.append(
                    _error(
                        "PG407",
                        where or first,
                        f"Glance's {name} is {glance_value} but propguard's is {values[name]}: "
                        "propguard refills list pages to the wrong size",
                        f"set [propguard] {name} = {glance_value}",
                    )
                )
        self._check_collation(first)

    def _first_glance_file(self) -> str:
        files = self.d.glance_config_files or self.d.config_files
        return list(files)[0] if files else self.d.paste_ini

    def _glance_value(self, name: str) -> tuple[str, Position | None]:
        setting = self.glance.get("DEFAULT", name) if self.glance else None
        if setting is None:
            return GLANCE_DEFAULTS[name], None
        return setting.value, setting.position

    def _check_collation(self, first: Position) -> None:
        assert self.values is not None
        configured = self.values["name_collation"]
        if configured == "auto":
            return
        connection = self.glance.get("database", "connection") if self.glance else None
        try:
            expected = folding_for_connection(connection.value if connection else None)
            chosen = folding(configured)
        except ValueError:
            return
        if (expected.name == "binary") != (chosen.name == "binary"):
            where = self.conf.get(opts.GROUP, "name_collation")
            dialect = connection.value.split(":", 1)[0] if connection else "none"
            self.problems.append(
                _error(
                    "PG406",
                    where.position if where else first,
                    f"name_collation = {configured} but [database] connection is {dialect}, "
                    f"whose property names compare as {expected.name}",
                    "set name_collation = auto (it follows the connection)",
                )
            )

    def check_dangling(self) -> None:
        values = self.values
        if values is None:
            return
        from propguard.notifications import opts as notification_opts
        from propguard.relations import opts as relations_opts

        if not values.get("relations_connection"):
            for opt in relations_opts.OPTS:
                if opt.dest == "relations_connection":
                    continue
                setting = self.conf.get(opts.GROUP, opt.dest)
                if setting is not None:
                    self.problems.append(
                        _error(
                            "PG410",
                            setting.position,
                            f"{opt.dest} is set but relations_connection is not: relations "
                            "are off, the option points at nothing",
                            "set relations_connection, or remove the option",
                        )
                    )
        outbox = values.get("relations_outbox")
        if values.get("relations_connection") and outbox:
            folder = os.path.dirname(os.path.abspath(outbox))
            if not os.path.isdir(folder):
                setting = self.conf.get(opts.GROUP, "relations_outbox")
                self.problems.append(
                    _error(
                        "PG410",
                        setting.position if setting else Position(self.d.paste_ini, 1),
                        f"relations_outbox {outbox}: its directory {folder} does not exist",
                    )
                )
        group = notification_opts.OUTPUT_GROUP
        if self.conf.sections.get(group):
            driver = self.conf.get("oslo_messaging_notifications", "driver")
            drivers = [d.strip() for d in (driver.value if driver else "").split(",")]
            if "propguard" not in drivers:
                self.problems.append(
                    _error(
                        "PG410",
                        next(iter(self.conf.sections[group].values())).position,
                        f"[{group}] is set but [oslo_messaging_notifications] driver does not "
                        "list propguard: the options point at nothing (and notifications go "
                        "out unfiltered if another driver sends them)",
                        "set [oslo_messaging_notifications] driver = propguard",
                    )
                )

    def check_notification_dry_run(self) -> None:
        """``enforce = false`` in ``[propguard]`` of the config files beside the propguard driver.

        The notification driver reads ``[propguard]`` and refuses a dry run
        (it would send every property to the indexers), so it does not load
        and Glance's notifications stop; the API's dry run belongs in the
        paste section, which the driver does not read.
        """
        setting = self.conf.get(opts.GROUP, "enforce")
        if setting is None or setting.value.strip().lower() not in ("false", "0", "no", "off"):
            return
        driver = self.conf.get("oslo_messaging_notifications", "driver")
        if "propguard" not in [d.strip() for d in (driver.value if driver else "").split(",")]:
            return
        self.problems.append(
            _error(
                "PG409",
                setting.position,
                "enforce = false in [propguard] with the propguard notification driver: the "
                "driver refuses a dry run and does not load, so Glance's notifications stop",
                "put enforce = false in propguard's paste section ([filter:propguard]) instead",
            )
        )

    def check_issuer_sections(self) -> None:
        """A ``[propguard_jwt:<name>]`` section for an issuer ``issuers`` does not list.

        The jwt filter refuses to start on it; said here with its line first.
        """
        from propguard.jwt import opts as jwt_opts

        prefix = f"{jwt_opts.GROUP}:"
        listed = self.conf.get(jwt_opts.GROUP, "issuers")
        text = listed.value if listed else ""
        for name in sorted(self._filters(JWT_FACTORIES)):
            in_paste = self.paste.get(f"filter:{name}", "issuers")
            if in_paste is not None:
                text = in_paste.value
        names = [n.strip() for n in text.split(",") if n.strip()]
        for section, settings in self.conf.sections.items():
            if not section.startswith(prefix) or section[len(prefix) :] in names or not settings:
                continue
            self.problems.append(
                _error(
                    "PG410",
                    next(iter(settings.values())).position,
                    f"[{section}] configures issuer {section[len(prefix):]!r}, which issuers "
                    f"({', '.join(names) or 'not set'}) does not list: its options point at "
                    "nothing (the jwt filter refuses to start)",
                    "add the name to issuers, or remove the section",
                )
            )

    def run(self) -> list[Problem]:
        self.check_unknown_options()
        self.resolve()
        self.check_pipelines()
        self.check_glance_options()
        self.check_dangling()
        self.check_notification_dry_run()
        self.check_issuer_sections()
        return self.problems


def check_deployment(deployment: Deployment) -> tuple[list[Problem], dict[str, Any] | None]:
    """The deployment's findings and the filter's resolved options (None if it would not start)."""
    for path in (deployment.paste_ini, *deployment.config_files):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(deployment.paste_ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{deployment.paste_ini}: {exc}") from None
    checker = Checker(deployment)
    problems = checker.run()
    return problems, checker.values
