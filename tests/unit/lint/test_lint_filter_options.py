"""Every filter option has a lint option, checked as the filter checks it; ``rules_file``
is read as the loader reads it (issue 21, point 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from propguard import cli, opts
from propguard.cli import main

RULES = "[.*]\ncreate = admin\nread = admin,member\nupdate = admin\ndelete = admin\n"


def _lint_flags() -> set[str]:
    parser = cli.build_parser()
    lint = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "lint")[
        1
    ]
    return {flag for action in lint._actions for flag in action.option_strings}


def test_every_filter_option_has_a_lint_option():
    """A new [propguard] option fails this until lint has a flag for it or declares it
    a runtime option (then -O NAME=VALUE checks its value)."""
    flags = _lint_flags()
    spelt = dict((name, flag) for flag, name in (*cli.RULES_FLAGS, *cli.LINT_ONLY_FLAGS))
    for opt in opts.OPTS:
        assert opt.dest in spelt or opt.dest in cli.RUNTIME_OPTIONS, opt.dest
        if opt.dest in spelt:
            assert spelt[opt.dest] in flags, (opt.dest, spelt[opt.dest])
    assert {"-O", "--option"} <= flags
    assert not (set(spelt) & cli.RUNTIME_OPTIONS)


@pytest.mark.parametrize(
    "opt", [o for o in opts.OPTS if o.dest in cli.RUNTIME_OPTIONS], ids=lambda o: o.dest
)
def test_runtime_options_are_accepted_with_their_default(opt, tmp_path: Path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    default = opt.default
    if isinstance(default, list):
        text = ",".join(default)
    elif isinstance(default, dict):
        text = ",".join(f"{k}:{v}" for k, v in default.items())
    else:
        text = (
            ""
            if default is None
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
    assert main(["lint", "-q", "--rules-file", str(rules), "-O", f"{opt.dest}={text}"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-O", "property_quota=lots"], "property_quota"),
        (["-O", "rule_formt=policies"], "did you mean 'rule_format'"),
        (["-O", "reload_interval"], "NAME=VALUE"),
        (["--protect-core-attributes", "locations,checksum"], "protect_core_attributes"),
        (["--inject-properties", "owner_x:{nobody}"], "nobody"),
    ],
)
def test_bad_option_values_stop_lint_as_they_stop_the_filter(argv, message, tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    assert main(["lint", "--rules-file", str(rules), *argv]) == 2
    assert message in capsys.readouterr().err


def _policy_dir(tmp_path: Path) -> Path:
    """A directory lint would happily read as a policy directory."""
    folder = tmp_path / "policy.d"
    folder.mkdir()
    (folder / "10.yaml").write_text('"context_is_admin": "role:admin"\n')
    return folder


def test_rules_file_directory_is_the_loaders_error(tmp_path: Path, capsys):
    folder = _policy_dir(tmp_path)
    assert main(["lint", "--format", "json", "--rules-file", str(folder)]) == 1
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)]
    assert codes == ["PG101"]


def test_rules_file_directory_from_config_file_is_the_loaders_error(tmp_path: Path, capsys):
    folder = _policy_dir(tmp_path)
    conf = tmp_path / "glance-api.conf"
    conf.write_text(f"[propguard]\nrules_file = {folder}\n")
    assert main(["lint", "--format", "json", "--config-file", str(conf)]) == 1
    assert "PG101" in [f["code"] for f in json.loads(capsys.readouterr().out)]


def test_a_directory_argument_is_still_searched(tmp_path: Path, capsys):
    (tmp_path / "protections.conf").write_text(RULES)
    assert main(["lint", "-q", str(tmp_path)]) == 0
