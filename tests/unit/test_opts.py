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
    from propguard.jwt import opts as jwt_opts
    from propguard.notifications import opts as notification_opts

    listed = opts.list_opts()
    groups = dict(listed)
    assert len(groups) == len(listed)  # no group twice
    assert {o.dest for o in groups["propguard"]} == {o.dest for o in opts.OPTS}
    for group, options in (*notification_opts.list_opts(), *jwt_opts.list_opts()):
        assert {o.dest for o in groups[group]} == {o.dest for o in options}
    assert all(o.help for _, options in listed for o in options)


def test_oslo_config_generator_namespace():
    generator = shutil.which("oslo-config-generator", path=str(Path(sys.executable).parent))
    assert generator, "oslo-config-generator must be installed with oslo.config"
    out = subprocess.run(
        [generator, "--namespace", "propguard"], capture_output=True, text=True, check=True
    ).stdout
    assert "[propguard]" in out
    assert "[propguard_notifications]" in out and "[propguard_notify_filter]" in out
    assert "[propguard_jwt]" in out
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


# -- [propguard] in glance-api.conf: a bad value fails closed, an unset one is the default --


def parsed_conf(tmp_path: Path, body: str) -> tuple[cfg.ConfigOpts, Path]:
    """A fresh ConfigOpts parsed from a real glance-api.conf, as glance-api parses it."""
    conf_file = tmp_path / "glance-api.conf"
    conf_file.write_text("[DEFAULT]\ndebug = false\n\n[propguard]\n" + body, encoding="utf-8")
    c = cfg.ConfigOpts()
    c([], project="glance", default_config_files=[str(conf_file)], default_config_dirs=[])
    return c, conf_file


BAD_FILE_VALUES = [
    ("rule_format", "policy", "Valid values are [roles, policies]"),
    ("service_role_mode", "Union", "Valid values are [strict, union]"),
    ("reload_interval", "5s", "could not convert string to float"),
    ("reload_on_sighup", "perhaps", "Unexpected boolean value"),
    ("trust_identity_headers", "yes please", "Unexpected boolean value"),
    ("os_glance_section", "2", "Unexpected boolean value"),
    ("max_request_body_size", "10", "greater than or equal to 1024"),
    ("max_response_body_size", "64M", "invalid literal for int()"),
    ("decision_cache_size", "-1", "greater than or equal to 0"),
]


@pytest.mark.parametrize(
    ("key", "value", "reason"), BAD_FILE_VALUES, ids=[row[0] for row in BAD_FILE_VALUES]
)
def test_bad_value_in_config_file_is_refused_with_its_name(tmp_path, key, value, reason):
    """Never the default instead: ``rule_format = policy`` read as ``roles`` would
    deny everything; the error names the option, the group, the value and the file."""
    c, conf_file = parsed_conf(tmp_path, f"rules_file = /etc/glance/pp.conf\n{key} = {value}\n")
    with pytest.raises(ValueError) as info:
        opts.resolve({}, c)
    message = str(info.value)
    assert f"[propguard] {key} = {value!r}" in message
    assert str(conf_file) in message
    assert reason in message
    assert "\n" not in message


def test_every_bad_value_is_refused_not_only_the_first(tmp_path):
    """Each bad option is refused on its own: once the first is overridden with a good
    value, the next bad one is refused in turn, none falls back to its default."""
    good = {
        "rule_format": "roles",
        "service_role_mode": "strict",
        "reload_interval": "5",
        "reload_on_sighup": "true",
        "trust_identity_headers": "false",
        "os_glance_section": "true",
        "max_request_body_size": "2048",
        "max_response_body_size": "2048",
        "decision_cache_size": "0",
    }
    bad = {key: value for key, value, _ in BAD_FILE_VALUES}
    c, _ = parsed_conf(tmp_path, "".join(f"{k} = {v}\n" for k, v in bad.items()))
    fixed: dict[str, str] = {}
    for opt in opts.OPTS:
        if opt.dest not in bad:
            continue
        with pytest.raises(ValueError, match=rf"\[propguard\] {opt.dest} = '{bad[opt.dest]}'"):
            opts.resolve(fixed, c)
        fixed[opt.dest] = good[opt.dest]
    assert opts.resolve(fixed, c)["max_request_body_size"] == 2048


def test_paste_value_still_wins_over_a_bad_config_file_value(tmp_path):
    """The paste section decides where it sets the option; oslo.config is not read then."""
    c, _ = parsed_conf(tmp_path, "rule_format = policy\n")
    assert opts.resolve({"rule_format": "policies"}, c)["rule_format"] == "policies"


def test_bad_value_from_the_environment_is_refused(conf, monkeypatch):
    monkeypatch.setenv("OS_PROPGUARD__RULE_FORMAT", "policy")
    c = cfg.ConfigOpts()
    c([], project="glance", default_config_files=[], default_config_dirs=[])
    with pytest.raises(ValueError) as info:
        opts.resolve({}, c)
    message = str(info.value)
    assert "[propguard] rule_format = 'policy'" in message
    assert "OS_PROPGUARD__RULE_FORMAT" in message


@pytest.mark.parametrize(
    ("value", "missing"),
    [("$nosuch/pp.conf", "nosuch"), ("${nosuch.dir}/pp.conf", "nosuch")],
    ids=["option", "group"],
)
def test_dangling_reference_in_a_set_value_is_refused(tmp_path, value, missing):
    """oslo.config reports ``$nosuch`` with NoSuchOptError / NoSuchGroupError, the same
    classes as an option that is not there: these name the reference, not the option,
    so they are bad values, not "unset"."""
    c, _ = parsed_conf(tmp_path, f"rules_file = {value}\n")
    with pytest.raises(ValueError) as info:
        opts.resolve({}, c)
    assert "[propguard] rules_file" in str(info.value)
    assert missing in str(info.value)


def test_valid_config_file_values_are_typed(tmp_path):
    c, _ = parsed_conf(
        tmp_path,
        "rules_file = /etc/glance/pp.conf\n"
        "rule_format = policies\n"
        "policy_file = /etc/glance/policy.yaml\n"
        "service_role_mode = union\n"
        "service_token_roles = service, nova\n"
        "reload_interval = 2.5\n"
        "reload_on_sighup = False\n"
        "trust_identity_headers = true\n"
        "max_request_body_size = 2048\n"
        "decision_cache_size = 0\n",
    )
    values = opts.resolve({}, c)
    assert values["rule_format"] == "policies"
    assert values["policy_file"] == "/etc/glance/policy.yaml"
    assert values["service_role_mode"] == "union"
    assert values["service_token_roles"] == ["service", "nova"]
    assert values["reload_interval"] == 2.5
    assert values["reload_on_sighup"] is False
    assert values["trust_identity_headers"] is True
    assert values["max_request_body_size"] == 2048
    assert values["decision_cache_size"] == 0
    assert values["name_cache_size"] == 10000  # not set: default


def test_options_absent_from_the_file_are_defaults(tmp_path):
    c, _ = parsed_conf(tmp_path, "")
    assert opts.resolve({}, c) == {o.dest: o.default for o in opts.OPTS}


def test_unparsed_config_gives_defaults_without_error():
    """cfg.CONF before glance-api parsed it (or never, under a bare paste server):
    oslo.config raises nothing for a registered option, it returns the default."""
    c = cfg.ConfigOpts()  # never called
    values = opts.resolve({"rules_file": "/etc/glance/pp.conf"}, c)
    assert values["rules_file"] == "/etc/glance/pp.conf"
    assert {k: v for k, v in values.items() if k != "rules_file"} == {
        o.dest: o.default for o in opts.OPTS if o.dest != "rules_file"
    }


class _Unreadable(cfg.ConfigOpts):
    """A ConfigOpts whose ``[propguard]`` options cannot be read at all."""

    def __init__(self, error):
        super().__init__()
        self._error = error

    def __getitem__(self, key):
        error = self._error

        class Group:
            def __getattr__(self, name):
                raise error(name)

        return Group()


@pytest.mark.parametrize(
    "error",
    [
        lambda name: cfg.NoSuchOptError(name, cfg.OptGroup("propguard")),
        lambda name: cfg.NoSuchOptError(name, "propguard"),
        lambda name: cfg.NoSuchGroupError("propguard"),
        lambda name: cfg.NotInitializedError(),
    ],
    ids=["no-such-opt", "no-such-opt-str-group", "no-such-group", "not-initialized"],
)
def test_option_that_is_not_there_falls_back_to_its_default(error):
    values = opts.resolve({"rules_file": "/pp.conf"}, _Unreadable(error))
    assert values["rule_format"] == "roles" and values["service_role_mode"] == "strict"
    assert values["reload_interval"] == 5.0


@pytest.mark.parametrize(
    "error",
    [
        lambda name: cfg.NoSuchOptError("other", cfg.OptGroup("propguard")),
        lambda name: cfg.NoSuchOptError(name, cfg.OptGroup("DEFAULT")),
        lambda name: cfg.NoSuchGroupError("other"),
        lambda name: cfg.ConfigFileValueError(f"Value for option {name} is not valid: bad"),
        lambda name: cfg.TemplateSubstitutionError("bad template"),
    ],
    ids=["other-opt", "other-group-opt", "other-group", "file-value", "template"],
)
def test_any_other_config_error_is_refused(error):
    with pytest.raises(ValueError, match=r"\[propguard\] rule_format"):
        opts.resolve({"rules_file": "/pp.conf"}, _Unreadable(error))


def test_filter_does_not_start_on_a_bad_config_file_value(tmp_path, monkeypatch):
    from propguard import middleware

    rules = tmp_path / "pp.conf"
    rules.write_text("[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    c, _ = parsed_conf(tmp_path, f"rules_file = {rules}\nservice_role_mode = Union\n")
    monkeypatch.setattr(cfg, "CONF", c)
    with pytest.raises(ValueError, match=r"\[propguard\] service_role_mode = 'Union'"):
        middleware.filter_factory({})(lambda environ, start_response: [])


def test_oslo_config_project_reads_that_projects_files(tmp_path: Path):
    """As oslo.middleware's ConfigurableMiddleware: ``oslo_config_project`` (with an
    optional ``oslo_config_file``) in the paste section means a private ConfigOpts
    over that project's files, not the process-wide cfg.CONF."""
    conf_file = tmp_path / "propguard.conf"
    conf_file.write_text("[propguard]\nrules_file = /etc/pg/rules.conf\nrule_format = policies\n")
    values = opts.resolve(
        {"oslo_config_project": "propguard-test", "oslo_config_file": str(conf_file)}
    )
    assert values["rules_file"] == "/etc/pg/rules.conf"
    assert values["rule_format"] == "policies"


# --- unknown options stop the filter, the proxy and the JWT filter at start (issue 21) ---


def test_unknown_paste_option_names_the_close_one(conf):
    with pytest.raises(ValueError, match=r"rule_formt \(did you mean 'rule_format'\?\)"):
        opts.resolve({"rule_formt": "policies"}, conf)


def _parsed(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    conf_file = tmp_path / "glance-api.conf"
    conf_file.write_text(text)
    c = cfg.ConfigOpts()
    c([], project="x", default_config_files=[str(conf_file)], default_config_dirs=[])
    return c


def test_unknown_option_in_config_file_group_is_refused(tmp_path: Path):
    """oslo.config ignores it; the filter must not (it would run with rule_format = roles)."""
    c = _parsed(tmp_path, "[propguard]\nrules_file = /x\nrule_formt = policies\n")
    with pytest.raises(ValueError, match=r"\[propguard\].*rule_formt.*'rule_format'"):
        opts.resolve({}, c)


def test_other_groups_and_known_options_pass(tmp_path: Path):
    c = _parsed(
        tmp_path,
        "[DEFAULT]\nwhatever = 1\n[glance_store]\nx = 1\n[propguard]\nrule_format = roles\n",
    )
    assert opts.resolve({}, c)["rule_format"] == "roles"


def test_unknown_option_in_config_dir_is_refused(tmp_path: Path):
    folder = tmp_path / "glance-api.conf.d"
    folder.mkdir()
    (folder / "10-propguard.conf").write_text("[propguard]\nservice_role_mod = union\n")
    c = cfg.ConfigOpts()
    c([], project="x", default_config_files=[], default_config_dirs=[str(folder)])
    with pytest.raises(ValueError, match="service_role_mod"):
        opts.resolve({}, c)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("insecure", "ture", "insecure"),
        ("pool_maxsize", "many", "pool_maxsize"),
        ("read_timout", "5", r"did you mean 'read_timeout'"),
    ],
)
def test_proxy_app_refuses_bad_and_unknown_options(key, value, match, monkeypatch):
    from propguard.proxy import app
    from propguard.proxy.server import UPSTREAM_ENV

    monkeypatch.delenv(UPSTREAM_ENV, raising=False)
    with pytest.raises(ValueError, match=match):
        app.app_factory({"here": "/x"}, upstream="http://glance:9292", **{key: value})


def test_proxy_app_reads_typed_options(monkeypatch):
    from propguard.proxy import app
    from propguard.proxy.server import UPSTREAM_ENV

    monkeypatch.delenv(UPSTREAM_ENV, raising=False)
    proxy = app.app_factory(
        {"here": "/x", "unrelated_default": "1"},
        upstream="http://glance:9292",
        insecure="true",
        trusted_proxies="10.0.0.2 10.0.0.3, 10.0.0.4",
    )
    assert proxy.trusted_proxies == ("10.0.0.2", "10.0.0.3", "10.0.0.4")


def test_jwt_unknown_option_in_config_file_is_refused(tmp_path: Path):
    from propguard.jwt import config as jwt_config

    c = _parsed(tmp_path, "[propguard_jwt]\niss = https://idp\nissuer_typo = 1\n")
    with pytest.raises(jwt_config.ConfigError, match="issuer_typo"):
        jwt_config.load({}, c, start=False)


def test_jwt_unknown_paste_option_names_the_close_one(conf):
    from propguard.jwt import config as jwt_config

    with pytest.raises(jwt_config.ConfigError, match=r"delay_auth_decison.*'delay_auth_decision'"):
        jwt_config.load({"delay_auth_decison": "true"}, conf, start=False)


def test_serve_stops_at_start_on_a_config_file_typo(tmp_path: Path):
    """`propguard serve` exits 2 before forking, naming the typo (it started silently before)."""
    rules = tmp_path / "rules.conf"
    rules.write_text("[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n")
    conf_file = tmp_path / "propguard.conf"
    conf_file.write_text(f"[propguard]\nrules_file = {rules}\nrule_formt = policies\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "propguard.cli",
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--bind",
            "127.0.0.1:0",
            "--config-file",
            str(conf_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "rule_formt (did you mean 'rule_format'?)" in done.stderr
