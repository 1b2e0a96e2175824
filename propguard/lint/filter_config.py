"""The filter's effective options, read from its paste.ini and oslo.config files.

Why: ``propguard lint --config-file glance-api.conf --paste-ini
glance-api-paste.ini`` should check what the deployed filter will load (its
rules file, format, policy file, injection), resolved exactly as the filter
resolves them (:func:`propguard.opts.resolve`: paste values first, then
``[propguard]``), not what the operator remembers to pass as flags.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from propguard import opts
from propguard.glance.collation import folding_for_connection

#: How a paste section names propguard's filter.
_FACTORY_NAMES = ("egg:propguard#propguard", "egg:propguard", "propguard.middleware:filter_factory")


class FilterConfigError(Exception):
    """The configuration cannot be read; the message names the file and what is wrong."""


def filter_options(
    config_files: Sequence[str] = (), paste_ini: str | None = None, filter_name: str | None = None
) -> dict[str, Any]:
    """Resolved ``[propguard]`` values of the filter these files configure."""
    for path in (*config_files, *([paste_ini] if paste_ini else [])):
        if not os.path.isfile(path):
            raise FilterConfigError(f"{path}: no such file")
    local_conf = _paste_local_conf(paste_ini, filter_name) if paste_ini else {}
    conf = cfg.ConfigOpts()
    try:
        conf([], project="propguard", default_config_files=list(config_files))
    except cfg.Error as exc:
        raise FilterConfigError(f"{', '.join(config_files)}: {exc}") from None
    try:
        return opts.resolve(local_conf, conf)
    except (ValueError, cfg.Error) as exc:
        raise FilterConfigError(str(exc)) from None


def _paste_local_conf(path: str, name: str | None) -> dict[str, Any]:
    """The filter section's own keys, as paste.deploy gives them to ``filter_factory``."""
    try:
        from paste.deploy import loadwsgi
    except ImportError:  # pragma: no cover - PasteDeploy comes with glance-api
        raise FilterConfigError("reading a paste.ini needs PasteDeploy") from None
    path = os.path.abspath(path)
    name = name or _propguard_section(path)
    try:
        context = loadwsgi.loadcontext(loadwsgi.FILTER, f"config:{path}", name=name)
    except LookupError as exc:
        raise FilterConfigError(f"{path}: {exc}") from None
    return {k: v for k, v in context.local_conf.items() if k != "__file__"}


def _propguard_section(path: str) -> str:
    """The one ``[filter:NAME]`` section that builds propguard's filter."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise FilterConfigError(f"{path}: {exc}") from None
    found = [
        section.split(":", 1)[1].strip()
        for section in parser.sections()
        if section.startswith("filter:")
        and (
            parser.get(section, "use", fallback="").strip() in _FACTORY_NAMES
            or parser.get(section, "paste.filter_factory", fallback="").strip() in _FACTORY_NAMES
        )
    ]
    if len(found) != 1:
        what = "no [filter:...] section" if not found else f"{len(found)} sections"
        raise FilterConfigError(
            f"{path}: {what} using egg:propguard#propguard; name one with --paste-filter"
        )
    return found[0]


def database_connection(config_files: Sequence[str]) -> str | None:
    """glance-api's ``[database] connection`` in these files (None: not set, or no file)."""
    if not config_files:
        return None
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("connection", secret=True), group="database")
    try:
        conf([], project="propguard", default_config_files=list(config_files))
        return conf.database.connection
    except cfg.Error as exc:
        raise FilterConfigError(f"{', '.join(config_files)}: {exc}") from None


def tool_collation(value: str, config_files: Sequence[str]) -> tuple[str, str | None]:
    """``name_collation`` for lint, explain and matrix, and a note saying what was assumed.

    A named collation is used as it is. ``auto`` is what the filter inside
    glance-api resolves from these files' ``[database] connection``; with no
    connection known, ``binary`` (the tools cannot see the database; the filter
    itself would refuse to start there), and the note says so.
    """
    if value != "auto":
        return value, None
    connection = database_connection(config_files)
    if connection is None:
        return "binary", (
            "name_collation = auto and no [database] connection in --config-file: names are "
            "compared exactly (binary). In front of MySQL/MariaDB pass --name-collation "
            "(glance-api's schema: utf8mb3_general_ci); the filter refuses auto where it cannot "
            "read Glance's database (propguard serve, notify-filter)"
        )
    try:
        found = folding_for_connection(connection).name
    except ValueError as exc:
        raise FilterConfigError(f"name_collation = auto: {exc}") from None
    dialect = connection.split(":", 1)[0]
    return found, f"name_collation = auto: {found}, from [database] connection ({dialect})"
