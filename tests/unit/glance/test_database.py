"""``name_collation = auto``: Glance's ``[database] connection`` found as glance-api finds it.

Each test parses a private ``ConfigOpts`` the way glance-api parses its
``cfg.CONF`` (project ``glance``), never the global one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from glance.common import wsgi_app
from oslo_config import cfg

from propguard.glance.database import CollationUnknown, glance_database, name_folding

SQLITE = "sqlite:////var/lib/glance/glance.sqlite"
MARIADB = "mysql+pymysql://glance:secret@db.example/glance?charset=utf8"


def _conf_file(path: Path, connection: str | None, *, extra: str = "") -> Path:
    text = "[DEFAULT]\ndebug = false\n" + extra
    if connection is not None:
        text += f"\n[database]\nconnection = {connection}\n"
    path.write_text(text)
    return path


def _glance_conf(
    files: list[Path], dirs: list[Path] = (), args: list[str] = (), project: str = "glance"
) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf.register_cli_opt(cfg.BoolOpt("debug"))  # a service option the finder must skip
    conf(
        args=list(args),
        project=project,
        prog="glance-api",
        default_config_files=[str(f) for f in files],
        default_config_dirs=[str(d) for d in dirs],
    )
    return conf


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("OS_DATABASE__CONNECTION", raising=False)


def _refusal(excinfo) -> str:
    message = str(excinfo.value)
    assert "name_collation" in message
    assert "binary for SQLite or PostgreSQL" in message
    assert "utf8mb3_general_ci" in message
    return message


def test_named_collation_needs_no_glance():
    assert name_folding("binary", cfg.ConfigOpts()).name == "binary"
    assert name_folding("utf8mb3_general_ci", cfg.ConfigOpts()).name == "utf8mb3_general_ci"


def test_sqlite_from_glance_api_conf_is_binary_and_registers_nothing(tmp_path):
    conf = _glance_conf([_conf_file(tmp_path / "glance-api.conf", SQLITE)])
    assert name_folding("auto", conf).name == "binary"
    assert "database" not in conf  # oslo.db registers it later, with its own options


def test_mariadb_is_glance_schema_collation(tmp_path):
    conf = _glance_conf([_conf_file(tmp_path / "glance-api.conf", MARIADB)])
    assert name_folding("auto", conf).name == "utf8mb3_general_ci"
    assert glance_database(conf).dialect == "mysql"


def test_later_file_wins(tmp_path):
    first = _conf_file(tmp_path / "glance-image-import.conf", MARIADB)
    second = _conf_file(tmp_path / "glance-api.conf", SQLITE)
    assert name_folding("auto", _glance_conf([first, second])).name == "binary"
    assert name_folding("auto", _glance_conf([second, first])).name == "utf8mb3_general_ci"


def test_config_dir_overrides_the_files(tmp_path):
    main = _conf_file(tmp_path / "glance-api.conf", SQLITE)
    conf_d = tmp_path / "glance-api.conf.d"
    conf_d.mkdir()
    _conf_file(conf_d / "50-db.conf", MARIADB)
    _conf_file(conf_d / "10-other.conf", None)
    conf = _glance_conf([main], [conf_d, tmp_path / "absent.conf.d"])
    assert name_folding("auto", conf).name == "utf8mb3_general_ci"


def test_command_line_config_file_and_dir(tmp_path):
    default = _conf_file(tmp_path / "default.conf", MARIADB)
    given = _conf_file(tmp_path / "given.conf", SQLITE)
    conf = _glance_conf([default], args=["--config-file", str(given), "--debug"])
    assert name_folding("auto", conf).name == "binary"  # --config-file replaces the defaults
    conf_d = tmp_path / "d"
    conf_d.mkdir()
    _conf_file(conf_d / "db.conf", MARIADB)
    conf = _glance_conf([], args=[f"--config-file={given}", f"--config-dir={conf_d}"])
    assert name_folding("auto", conf).name == "utf8mb3_general_ci"


def test_uwsgi_config_files_from_os_glance_config_dir(tmp_path, monkeypatch):
    """As glance.common.wsgi_app.init_app parses them under uWSGI."""
    _conf_file(tmp_path / "glance-api.conf", MARIADB)
    monkeypatch.setenv("OS_GLANCE_CONFIG_DIR", str(tmp_path))
    conf = cfg.ConfigOpts()
    conf([], project="glance", prog="glance-api", default_config_files=wsgi_app._get_config_files())
    assert name_folding("auto", conf).name == "utf8mb3_general_ci"


def test_environment_variable_as_oslo_config_reads_it(tmp_path, monkeypatch):
    conf = _glance_conf([_conf_file(tmp_path / "glance-api.conf", MARIADB)])
    monkeypatch.setenv("OS_DATABASE__CONNECTION", SQLITE)
    assert name_folding("auto", conf).name == "binary"


def test_registered_database_group_with_override_is_used(tmp_path):
    """The in-process harness: oslo.db's options registered, the URL an override."""
    conf = _glance_conf([_conf_file(tmp_path / "glance-api.conf", MARIADB)])
    conf.register_opt(cfg.StrOpt("connection"), group="database")
    conf.set_override("connection", SQLITE, "database")
    assert name_folding("auto", conf).name == "binary"


def test_missing_connection_refuses(tmp_path):
    conf = _glance_conf([_conf_file(tmp_path / "glance-api.conf", None)])
    with pytest.raises(CollationUnknown) as excinfo:
        name_folding("auto", conf)
    assert "connection is not set" in _refusal(excinfo)
    assert str(tmp_path / "glance-api.conf") in str(excinfo.value)


def test_unknown_dialect_refuses(tmp_path):
    conf = _glance_conf([_conf_file(tmp_path / "glance-api.conf", "oracle://x/y")])
    with pytest.raises(CollationUnknown) as excinfo:
        name_folding("auto", conf)
    assert "'oracle'" in _refusal(excinfo)


def test_unparsed_configuration_refuses():
    """Not inside glance-api (a filter built in another program)."""
    with pytest.raises(CollationUnknown) as excinfo:
        name_folding("auto", cfg.ConfigOpts())
    assert "not running inside glance-api" in _refusal(excinfo)


def test_propguard_serve_configuration_refuses(tmp_path):
    """propguard serve parses its own files as project propguard: no Glance database there."""
    conf = _glance_conf([_conf_file(tmp_path / "propguard.conf", SQLITE)], project="propguard")
    with pytest.raises(CollationUnknown) as excinfo:
        name_folding("auto", conf)
    assert "propguard serve" in _refusal(excinfo)
