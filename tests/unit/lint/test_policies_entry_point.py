"""propguard's oslo.policy defaults and the oslo.policy.policies entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from oslo_policy import policy

from propguard.credentials import Credentials
from propguard.policy_defaults import list_rules
from propguard.rules.policy_set import load_policy_set


def test_entry_point_registered():
    (ep,) = [
        e for e in metadata.entry_points(group="oslo.policy.policies") if e.name == "propguard"
    ]
    assert ep.load() is list_rules
    rules = list_rules()
    assert all(isinstance(r, policy.RuleDefault) and r.description for r in rules)
    assert all(r.name.startswith("propguard:") for r in rules)


def test_loads_next_to_glance_and_evaluates():
    policies = load_policy_set(None, ("glance", "propguard"))

    def creds(roles=(), service=()):
        return Credentials(
            True, "u", "p", roles=frozenset(roles), service_roles=frozenset(service)
        ).policy_values()

    assert policies.evaluate("propguard:admin_or_service_relay", creds(service=["service"]))
    assert not policies.evaluate("propguard:admin_or_service_relay", creds(roles=["member"]))
    # a service token alone never widens what the user sees
    assert not policies.evaluate("propguard:reader_via_service", creds(service=["service"]))
    assert policies.evaluate("propguard:reader_via_service", creds(["reader"], ["service"]))


def test_sample_generator_renders_the_namespace():
    tool = Path(sys.executable).with_name("oslopolicy-sample-generator")
    out = subprocess.run(
        [str(tool), "--namespace", "propguard"], capture_output=True, text=True, check=True
    ).stdout
    assert '#"propguard:service_relay": "service_roles:service"' in out
    assert "PATCH  /v2/images/{image_id}" in out
