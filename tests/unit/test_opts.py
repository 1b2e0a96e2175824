"""Options: paste local conf first, then oslo.config ``[propguard]``; generator entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

from propguard import opts


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    c = cfg.ConfigOpts()
    c([], project="propguard-test", default_config_files=[], default_config_dirs=[])
    return c


def test_defaults_are_fail_closed(conf):
    values = opts.resolve({}, conf)
    assert values["rules_file"] is None
    assert values["rule_format"] == "roles"
    assert values["service_role_mode"] == "strict"
    assert values["service_token_roles"] == ["service"]
    assert values["trust_identity_headers"] is False
    assert values["protect_core_attributes"] == []


def test_paste_values_win_and_are_typed(conf):
    opts.register_opts(conf)
    conf.set_override("rule_format", "policies", group="propguard")
    conf.set_override("reload_interval", 30.0, group="propguard")
    values = opts.resolve(
        {
            "rule_format": "roles",
            "service_token_roles": "service, nova",
            "reload_on_sighup": "false",
        },
        conf,
    )
    assert values["rule_format"] == "roles"  # paste beats oslo.config
    assert values["service_token_roles"] == ["service", "nova"]
    assert values["reload_on_sighup"] is False
    assert values["reload_interval"] == 30.0  # from oslo.config


def test_oslo_config_file_is_read(tmp_path: Path):
    conf_file = tmp_path / "glance-api.conf"
    conf_file.write_text(
        "[propguard]\nrules_file = /etc/glance/pp.conf\nservice_role_mode = union\n"
    )
    c = cfg.ConfigOpts()
    opts.register_opts(c)
    c([], project="x", default_config_files=[str(conf_file)], default_config_dirs=[])
    values = opts.resolve({}, c)
    assert values["rules_file"] == "/etc/glance/pp.conf"
    assert values["service_role_mode"] == "union"


@pytest.mark.parametrize(
    ("key", "value"),
    [("rule_format", "yaml"), ("service_role_mode", "loose"), ("reload_on_sighup", "perhaps")],
)
def test_bad_paste_values_are_refused(conf, key, value):
    with pytest.raises(ValueError, match=key):
        opts.resolve({key: value}, conf)


def test_unknown_paste_option_is_refused(conf):
    with pytest.raises(ValueError, match="rule_file"):
        opts.resolve({"rule_file": "/typo"}, conf)


def test_filter_refuses_to_start_without_rules(conf, monkeypatch):
    from propguard import middleware

    monkeypatch.setattr(cfg, "CONF", conf)
    factory = middleware.filter_factory({})
    with pytest.raises(ValueError, match="rules_file"):
        factory(lambda environ, start_response: [])


def test_list_opts_covers_every_option():
    [(group, options)] = opts.list_opts()
    assert group == "propguard"
    assert {o.dest for o in options} == {o.dest for o in opts.OPTS}
    assert all(o.help for o in options)


def test_oslo_config_generator_namespace():
    generator = shutil.which("oslo-config-generator", path=str(Path(sys.executable).parent))
    assert generator, "oslo-config-generator must be installed with oslo.config"
    out = subprocess.run(
        [generator, "--namespace", "propguard"], capture_output=True, text=True, check=True
    ).stdout
    assert "[propguard]" in out
    for opt in opts.OPTS:
        assert f"#{opt.dest} =" in out


def test_relative_rules_file_is_found_in_config_dirs(tmp_path: Path, monkeypatch):
    """Like Glance's CONF.find_file(property_protection_file): /etc/glance-style lookup."""
    etc = tmp_path / "etc-glance"
    etc.mkdir()
    (etc / "glance-api.conf").write_text("[DEFAULT]\n")
    (etc / "property-protections.conf").write_text("[.*]\n")
    (etc / "policy.yaml").write_text("{}\n")
    c = cfg.ConfigOpts()
    c([], project="x", default_config_files=[str(etc / "glance-api.conf")], default_config_dirs=[])
    monkeypatch.chdir(tmp_path)  # not the config dir
    values = opts.resolve(
        {"rules_file": "property-protections.conf", "policy_file": "policy.yaml"}, c
    )
    assert values["rules_file"] == str(etc / "property-protections.conf")
    assert values["policy_file"] == str(etc / "policy.yaml")
    values = opts.resolve({"rules_file": "missing.conf"}, c)
    assert values["rules_file"] == "missing.conf"  # load error will name it
