"""``propguard demo``: the tour runs on every shipped sample, explained from each request.

Each shipped rules file in ``policies/`` (both roles samples and the policies
one, whose ``policy.yaml`` lies beside it) runs through the whole tour: a real
Glance behind auth_token and propguard, then the same steps on Glance alone.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from propguard import demo

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SAMPLES = sorted(POLICIES.glob("*.conf"))

pytestmark = pytest.mark.glance


def _tour(rules: Path, tmp_path: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = demo.run_tour(str(rules), str(tmp_path), out=out)
    return code, out.getvalue()


def test_every_sample_is_toured():
    assert {p.name for p in SAMPLES} == {
        "glance-compatible-roles.conf",
        "production.conf",
        "property-protections-policies.conf",
    }


@pytest.mark.parametrize("rules", SAMPLES, ids=lambda p: p.name)
def test_tour_runs_cleanly_on_each_sample(rules, tmp_path):
    code, text = _tour(rules, tmp_path)
    assert code == 0, text
    assert re.search(r"all \d+ steps behaved as expected", text), text
    assert "UNEXPECTED" not in text and "Traceback" not in text
    # What a member sees is printed from the answer, never claimed.
    seen = re.search(r"properties alice sees: (.*)", text).group(1)
    assert "removed from the answer: license_code" in seen
    # Glance alone, shown by running it: the list filter is a value oracle and a
    # member's save deletes what she cannot read.
    assert re.search(r"images listed: 1 -- Glance filters", text), text
    assert "license_code as the admin sees it: '(gone)'" in text
    assert "(behind propguard: 0 images listed)" in text
    assert "(behind propguard: license_code 'LIC-42')" in text


def _steps(text: str) -> list[str]:
    """The tour's steps, each with its indented lines (the header and chapter titles dropped)."""
    chunks = re.split(r"\n(?=\s*\d+\. \[)", text)
    return [c.split("\n\n")[0] for c in chunks if re.match(r"\s*\d+\. \[", c)]


def test_explanations_come_from_each_request_and_its_caller(tmp_path):
    _, text = _tour(POLICIES / "production.conf", tmp_path)
    steps = _steps(text)
    for step in steps:
        if "rules:" not in step:
            continue
        caller = re.search(r"caller: user (\w+), roles ([\w, ]+?)[;\n]", step)
        assert caller, step
        matched = re.findall(r"role entry '([\w:+]+)' matched", step)
        roles = set(caller.group(2).split(", "))
        service = set(re.findall(r"service roles ([\w, ]+)$", step, re.M))
        for entry in matched:
            for atom in entry.split("+"):
                if atom.startswith("service:"):
                    assert atom[len("service:") :] in ",".join(service), step
                else:
                    assert atom in roles, step  # the admin's step never explains a member
    # The admin's create is explained with the admin's roles.
    first = next(s for s in steps if "admin: POST /v2/images" in s)
    assert "caller: user admin, roles admin, member, reader" in first
    assert "create 'license_code' allowed" in first and "role entry 'admin' matched" in first


def test_service_token_roles_and_nova_reading_what_the_member_cannot(tmp_path):
    _, text = _tour(POLICIES / "production.conf", tmp_path)
    assert "service token CONFIRMED by auth_token (user nova), service roles service" in text
    assert "license_code: alice alone sees '(removed)', relayed by Nova 'LIC-42'" in text
    assert "service token sent but not counted (auth_token: X-Service-Identity-Status Invalid" in (
        text
    )


def test_help_is_plain_text():
    text = demo.build_parser().format_help()
    assert "``" not in text and ":func:" not in text
    assert "--rules" in text and "--policy-file" in text


def test_policies_sample_uses_the_policy_file_beside_it():
    resolved = demo.resolve_rules(str(POLICIES / "property-protections-policies.conf"))
    assert resolved.rule_format == "policies"
    assert resolved.policy_file == str(POLICIES / "policy.yaml")
    assert demo.resolve_rules(str(POLICIES / "production.conf")).rule_format == "roles"
