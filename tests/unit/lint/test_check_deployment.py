"""``propguard check`` on Glance 33's own shipped glance-api-paste.ini and a generated
glance-api.conf (issue 21, point 1): each deployment mistake alone, all together (the
newcomer case: one finding per mistake), and a clean deployment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from propguard.cli import main

SHIPPED = Path(sys.prefix) / "etc" / "glance" / "glance-api-paste.ini"
ROOT = Path(__file__).resolve().parents[3]
SERVE_INI = ROOT / "propguard" / "proxy" / "serve.ini"
RULES = "[.*]\ncreate = admin\nread = admin,member\nupdate = admin\ndelete = admin\n"
AUTH = "authtoken context"


def _paste(tmp_path: Path, keystone: str = "authtoken propguard context", caching=None) -> Path:
    """Glance's shipped file with propguard placed in the keystone pipelines."""
    text = SHIPPED.read_text(encoding="utf-8")
    caching = keystone if caching is None else caching
    for flavor, tail in (
        ("keystone", "rootapp"),
        ("keystone+caching", "cache rootapp"),
        ("keystone+cachemanagement", "cache cachemanage rootapp"),
    ):
        old = f"{flavor} = cors http_proxy_to_wsgi versionnegotiation osprofiler {AUTH} {tail}"
        assert old in text, old
        layers = caching if flavor == "keystone+caching" else keystone
        new = f"{flavor} = cors http_proxy_to_wsgi versionnegotiation osprofiler {layers} {tail}"
        text = text.replace(old, new)
    text += "\n[filter:propguard]\nuse = egg:propguard#propguard\n"
    path = tmp_path / "glance-api-paste.ini"
    path.write_text(text, encoding="utf-8")
    return path


def _conf(
    tmp_path: Path,
    default: str = "image_property_quota = -1\n",
    propguard: str = "",
    more: str = "",
) -> Path:
    (tmp_path / "rules.conf").write_text(RULES, encoding="utf-8")
    path = tmp_path / "glance-api.conf"
    path.write_text(
        f"[DEFAULT]\n{default}\n[paste_deploy]\nflavor = keystone\n"
        f"[propguard]\nrules_file = {tmp_path / 'rules.conf'}\n{propguard}\n{more}",
        encoding="utf-8",
    )
    return path


def _check(capsys, paste: Path, *confs: Path, extra=()) -> tuple[int, list[str]]:
    argv = ["check", "-q", "--format", "json", "--paste-ini", str(paste)]
    for conf in confs:
        argv += ["--config-file", str(conf)]
    code = main([*argv, *extra])
    return code, [f["code"] for f in json.loads(capsys.readouterr().out)]


def test_the_shipped_file_is_glance_33s():
    assert SHIPPED.is_file()
    assert "keystone+caching" in SHIPPED.read_text(encoding="utf-8")


def test_a_correct_deployment_is_clean(tmp_path, capsys):
    assert _check(capsys, _paste(tmp_path), _conf(tmp_path)) == (0, [])


MISTAKES = {
    # the three keystone pipelines
    "before-auth": ({"keystone": "propguard authtoken context"}, {}, ["PG402"] * 3),
    "missing-in-caching": ({"caching": "authtoken context"}, {}, ["PG401"]),
    "native-protection": (
        {},
        {"default": "image_property_quota = -1\nproperty_protection_file = /etc/glance/pp.conf\n"},
        ["PG404"],
    ),
    "quota-oracle": ({}, {"default": "image_property_quota = 128\n"}, ["PG405"]),
    "quota-default": ({}, {"default": ""}, ["PG405"]),
    "typo": ({}, {"propguard": "rule_formt = policies\n"}, ["PG408"]),
    "page-size": (
        {},
        {"default": "image_property_quota = -1\nlimit_param_default = 50\n"},
        ["PG407"],
    ),
    "collation": (
        {},
        {
            "propguard": "name_collation = binary\n",
            "more": "[database]\nconnection = mysql+pymysql://g:g@db/glance\n",
        },
        ["PG406"],
    ),
    "dangling-relations": ({}, {"propguard": "relations_outbox = /var/lib/x.outbox\n"}, ["PG410"]),
    "dangling-notifications": (
        {},
        {"more": "[propguard_notifications]\nmodes = views\n"},
        ["PG410"],
    ),
    "jwt-typo": ({}, {"more": "[propguard_jwt]\nisss = https://idp\n"}, ["PG408"]),
    "notification-dry-run": (
        {},
        {
            "propguard": "enforce = false\n",
            "more": "[oslo_messaging_notifications]\ndriver = propguard\n",
        },
        ["PG409"],
    ),
    "jwt-unlisted-issuer": (
        {},
        {
            "more": "[propguard_jwt]\nissuers = kc\n[propguard_jwt:kc]\nleeway = 5\n"
            "[propguard_jwt:k]\nleeway = 5\n"
        },
        ["PG410"],
    ),
    # read,admin,member is two policies in the policies format the config sets
    "rules-as-configured": (
        {},
        {"propguard": "rule_format = policies\n"},
        ["PG110"],
    ),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_alone(name, tmp_path, capsys):
    paste_kw, conf_kw, expected = MISTAKES[name]
    code, codes = _check(capsys, _paste(tmp_path, **paste_kw), _conf(tmp_path, **conf_kw))
    assert (code, sorted(codes)) == (1, expected)


def test_the_newcomer_case_one_finding_per_mistake(tmp_path, capsys):
    """The issue's case: exit 0 with '0 errors' from lint --paste-ini/--config-file before."""
    paste = _paste(tmp_path, keystone="propguard authtoken context", caching="authtoken context")
    conf = _conf(
        tmp_path,
        default="image_property_quota = 128\nproperty_protection_file = /etc/glance/pp.conf\n",
        propguard="rule_formt = policies\n",
    )
    code, codes = _check(capsys, paste, conf)
    # keystone: before auth (PG402, and keystone+cachemanagement shares the layers);
    # keystone+caching: missing; the native file; the quota oracle; the typo.
    assert code == 1
    assert sorted(codes) == ["PG401", "PG402", "PG402", "PG404", "PG405", "PG408"]


def test_unknown_options_in_the_paste_section(tmp_path, capsys):
    paste = _paste(tmp_path)
    paste.write_text(paste.read_text() + "rule_formt = policies\n")
    assert _check(capsys, paste, _conf(tmp_path)) == (1, ["PG408"])


def test_the_auth_layer_missing_from_the_used_pipeline(tmp_path, capsys):
    paste = _paste(tmp_path)
    text = paste.read_text().replace(
        "default = cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context",
        "default = cors http_proxy_to_wsgi versionnegotiation osprofiler propguard "
        "unauthenticated-context",
    )
    paste.write_text(text)
    conf = _conf(tmp_path)
    conf.write_text(conf.read_text().replace("flavor = keystone", "flavor ="))
    assert _check(capsys, paste, conf) == (1, ["PG403"])


def test_serve_ini_and_its_config(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    conf = tmp_path / "propguard.conf"
    conf.write_text(f"[propguard]\nrules_file = {rules}\n")
    assert _check(capsys, SERVE_INI, conf) == (0, [])
    paste = tmp_path / "serve.ini"
    paste.write_text(
        SERVE_INI.read_text().replace(
            "pipeline = canonical request_id authtoken propguard proxy",
            "pipeline = canonical request_id propguard authtoken proxy",
        )
        + "insecure = ture\nread_timout = 5\n"
    )
    code, codes = _check(capsys, paste, conf)
    assert (code, sorted(codes)) == (1, ["PG402", "PG408"])


def test_exit_2_on_a_missing_file(tmp_path, capsys):
    assert main(["check", "--paste-ini", str(tmp_path / "nope.ini")]) == 2


def test_sarif_of_the_newcomer_case_is_valid(tmp_path, capsys):
    import jsonschema
    from lint_helpers import SARIF_SCHEMA

    paste = _paste(tmp_path, keystone="propguard authtoken context")
    conf = _conf(tmp_path, propguard="rule_formt = policies\n")
    argv = ["check", "-q", "--format", "sarif", "--paste-ini", str(paste)]
    assert main([*argv, "--config-file", str(conf)]) == 1
    log = json.loads(capsys.readouterr().out)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(log)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"PG402", "PG408"}
