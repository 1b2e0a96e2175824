"""Relations options: paste section first, then [propguard]; the filter's start-up with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg
from paste.deploy import loadfilter

from propguard.middleware import PropertyProtectionFilter, filter_factory
from propguard.relations import opts
from propguard.relations.filter import RelationsFilter
from propguard.relations.outbox import OutboxError

RULES = "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"


def _app(environ, start_response):
    start_response("200 OK", [])
    return [b"downstream"]


def test_defaults_and_paste_values():
    conf = cfg.ConfigOpts()
    values = opts.resolve({}, conf)
    assert values == {
        "relations_connection": "",
        "relations_service_roles": ["service"],
        "relations_origins": {},
        "relations_rotation": False,
        "relations_synchronous": False,
        "relations_outbox": "",
        "relations_timeout": 2.0,
        "relations_retry_interval": 5.0,
    }
    values = opts.resolve(
        {
            "relations_rotation": "true",
            "relations_origins": "nova-a:region-one,nova-b:region-two",
            "relations_service_roles": "service,nova",
        },
        conf,
    )
    assert values["relations_rotation"] is True
    assert values["relations_origins"] == {"nova-a": "region-one", "nova-b": "region-two"}
    assert values["relations_service_roles"] == ["service", "nova"]


def test_config_file_values(tmp_path):
    path = tmp_path / "glance-api.conf"
    path.write_text(
        "[propguard]\nrelations_connection = /var/lib/x.sqlite\nrelations_timeout = 0.5\n"
    )
    conf = cfg.ConfigOpts()
    conf.register_opts(opts.OPTS, group="propguard")
    conf(args=[], default_config_files=[str(path)])
    values = opts.resolve({"relations_timeout": "3"}, conf)
    assert values["relations_connection"] == "/var/lib/x.sqlite"
    assert values["relations_timeout"] == 3.0  # the paste section wins


@pytest.mark.parametrize(
    ("name", "value"),
    [("relations_rotation", "maybe"), ("relations_timeout", "2s"), ("relations_timeout", "0")],
)
def test_bad_values_stop_the_filter(name, value):
    with pytest.raises(ValueError, match=name):
        opts.resolve({name: value}, cfg.ConfigOpts())


def test_list_opts():
    ((group, listed),) = opts.list_opts()
    assert group == "propguard" and {o.dest for o in listed} == opts.NAMES


def test_off_by_default_the_filter_is_unchanged(tmp_path):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    filt = filter_factory(
        {}, rules_file=str(rules), reload_on_sighup="false", name_collation="binary"
    )(_app)
    assert isinstance(filt, PropertyProtectionFilter)


def test_paste_ini_with_relations(tmp_path: Path):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    ini = tmp_path / "glance-api-paste.ini"
    ini.write_text(
        "[filter:propguard]\nuse = egg:propguard#propguard\n"
        f"rules_file = {rules}\nreload_on_sighup = false\nname_collation = binary\n"
        f"relations_connection = {tmp_path / 'relations.sqlite'}\n"
    )
    layer = loadfilter(f"config:{ini}", name="propguard")(_app)
    try:
        assert isinstance(layer, RelationsFilter)
        assert isinstance(layer.application, PropertyProtectionFilter)
        assert layer.recorder.outbox.path == str(tmp_path / "relations.outbox")
        assert (tmp_path / "relations.sqlite").exists()
    finally:
        layer.recorder.close()
        layer.store.dispose()


def test_unwritable_outbox_stops_the_filter(tmp_path):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OutboxError, match="cannot be written"):
        filter_factory(
            {},
            rules_file=str(rules),
            reload_on_sighup="false",
            name_collation="binary",
            relations_connection=str(tmp_path / "r.sqlite"),
            relations_outbox=str(blocker / "outbox"),
        )(_app)


def test_oslo_config_project_files_are_read_too(tmp_path):
    """``oslo_config_project``/``oslo_config_file`` in the paste section, as for every option."""
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    conf_file = tmp_path / "propguard.conf"
    conf_file.write_text(
        f"[propguard]\nrelations_connection = {tmp_path / 'from-file.sqlite'}\n"
        "relations_rotation = true\n"
    )
    layer = filter_factory(
        {"here": str(tmp_path)},
        rules_file=str(rules),
        reload_on_sighup="false",
        name_collation="binary",
        oslo_config_project="propguard-test",
        oslo_config_file=str(conf_file),
    )(_app)
    try:
        assert isinstance(layer, RelationsFilter) and layer.rotation is True
        assert (tmp_path / "from-file.sqlite").exists()
    finally:
        layer.recorder.close()
        layer.store.dispose()
