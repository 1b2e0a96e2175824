"""Glance's sample and test files give the findings they deserve; policies/ lints clean."""

from __future__ import annotations

from pathlib import Path

from lint_helpers import GLANCE, ROOT, lint_options

from propguard.lint import lint_paths


def _codes(path: Path, **kw) -> list[str]:
    return [p.code for p in lint_paths([str(path)], lint_options(**kw))]


def test_glance_roles_sample_is_clean():
    assert _codes(GLANCE / "property-protections-roles.conf.sample") == []


def test_glance_policies_sample_relies_on_an_always_true_default():
    # [^x_.*] uses Glance's 'default' policy, whose check string is '' (everyone).
    assert _codes(GLANCE / "property-protections-policies.conf.sample") == ["PG213"]


def test_glance_test_roles_file():
    codes = _codes(GLANCE / "property-protections.conf")
    assert codes.count("PG204") == 12  # unanchored literal sections
    assert codes.count("PG205") == 1  # [x_foo_*]
    assert codes.count("PG206") == 2  # spl_update_only_prop, x_none_read
    assert codes.count("PG207") == 1  # admin,Member
    assert set(codes) == {"PG204", "PG205", "PG206", "PG207"}


def test_glance_test_policies_file():
    codes = _codes(
        GLANCE / "property-protections-policies.conf", policy_file=str(GLANCE / "policy.yaml")
    )
    assert set(codes) == {"PG204", "PG205", "PG206", "PG213"}
    # without Glance's test policy.yaml, glance_creator is undefined: an error
    assert "PG111" in _codes(GLANCE / "property-protections-policies.conf")


def test_all_files_in_policies_lint_clean():
    folder = ROOT / "policies"
    files = sorted(folder.glob("*.conf")) + sorted(folder.glob("*.yaml"))
    policy = folder / "policy.yaml"
    for path in files:
        problems = lint_paths(
            [str(path)],
            lint_options(
                policy_file=str(policy) if policy.exists() else None,
                policy_namespaces=("glance", "propguard"),
            ),
        )
        assert problems == [], [str(p) for p in problems]


def test_policy_file_given_alongside_resolves_rule_names():
    # `propguard lint rules.conf policy.yaml`: names resolve in the policy file next to it
    rules = ROOT / "policies" / "property-protections-policies.conf"
    policy = ROOT / "policies" / "policy.yaml"
    auto = lint_options(rule_format="auto")
    assert lint_paths([str(rules), str(policy)], auto) == []
    assert {p.code for p in lint_paths([str(rules)], auto)} == {"PG111"}
