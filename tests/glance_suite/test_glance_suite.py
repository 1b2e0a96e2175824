"""Glance 33.0.0's own API functional tests, passing through propguard (issue 12).

What runs: Glance's ``glance/tests/functional/v2/``,
``test_gzip_middleware.py`` and the other API-pipeline modules
(``test_api``, ``test_cors_middleware``, ``test_cache_middleware``,
``test_healthcheck_middleware``, ``test_logging``, ``test_sqlite``,
``test_staging_cleanup``: ``SUITE_MODULES`` in ``glance_suite_runner.py``),
266 tests, which build glance-api in-process through
``glance.tests.functional.SynchronousAPIBase``, run by pytest in a
subprocess (``glance_suite_runner.py``) with ``propguard_glance_plugin.py``
loaded. The plugin puts propguard (``propguard.middleware:filter_factory``)
right before Glance's context filter in every pipeline of the paste config
those tests write (``fakeauth propguard context gzip rootapp``, ``cors
propguard context gzip rootapp``, ``propguard context cache cachemanage gzip
rootapp``, ``propguard context rootapp``, ``versionnegotiation propguard
unauthenticated-context cache cachemanage rootapp``). Apart from four shims
that its docstring lists (three of them in every mode, the baseline
included), Glance's tests run unchanged.

Baseline, measured without propguard (Glance 33.0.0, this machine kind,
qemu-img installed): 266 collected, 259 passed, 5 failed (``BASELINE_FAILURES``),
2 skipped (``GLANCE_SKIPS``).

(a) transparency: propguard with ``permissive-rules.conf`` (one ``[.*]``
    section, ``@`` for all four operations). Every test that passes without
    propguard passes with it. The property-protection tests keep Glance's
    own ``property_protection_file`` here (propguard merely in front); they
    are the subject of (b).
(b) protections: Glance's property-protection tests (every test of the suite
    that configures ``property_protection_file``: all in
    ``v2/test_property_protection.py``, which the transparency run confirms)
    with that option unset in Glance and the very file the test configured
    enforced by propguard instead, in the format the test names (roles and
    policies), with the policy file the test gives Glance plus the rules the
    test adds to Glance's enforcer, in ``service_role_mode`` ``strict`` and
    ``union``. Glance's ``PropertyRules`` is never built there (checked), so
    every 403 those tests expect is propguard's.

Identity: those tests send ``X-Identity-Status``/``X-Roles``/``X-Tenant-Id``
headers with no keystonemiddleware ``auth_token`` before Glance (Glance's
``fakeauth`` sets them from ``X-Auth-Token`` in one pipeline; in the others
Glance's ``context`` filter takes the headers as they come). propguard trusts
identity headers only when ``auth_token`` or its own token filter ran
(``environ['keystone.token_auth']``/``['propguard.identity']``, which no
client can set), so here it would see every caller as anonymous. The plugin
therefore sets ``trust_identity_headers = true`` in the ``[filter:propguard]``
section of these test pipelines only. That does not weaken the production
default: the option defaults to ``false`` (checked below), it is per filter
section, and in these pipelines Glance itself already takes the same headers
at face value, so propguard decides on exactly the identity Glance acts on,
no more. That propguard ignores such headers without ``auth_token`` is pinned
by ``tests/unit/test_identity.py`` (``test_no_auth_layer_is_anonymous_even_with_spoofed_headers``).

Excluded, never silently (each listed below with its reason):

* ``BASELINE_FAILURES``: tests that fail without propguard on this kind of
  machine; deselected from the propguard runs, and re-run without propguard
  each time to show they still fail there.
* ``NEEDS_QEMU_IMG``: tests that run ``qemu-img``; deselected only when it is
  not installed (``scripts/install-glance-suite-deps.sh`` installs it), and
  then a skipped test here names them.
* ``GLANCE_SKIPS``: tests Glance's own code skips; they must be skipped in
  every run, not fail.

``EXPECTED_DIFFERENT``: tests of (b) that assert a Glance defect propguard
deliberately fixes (docs/differences.md), each with its row of that
table; they are run and must fail with the listed message, so a change either
way is seen. Glance 33.0.0's property-protection tests assert no such defect:
the list is empty, and stays checked.

Speed: the transparency run uses pytest-xdist (``PROPGUARD_GLANCE_WORKERS``,
default 3: Glance's tests mostly wait on their own polling loops, and Glance
runs them in parallel under stestr too) and is shared by the tests of this
module. A test that fails in it is run again alone, with and then without
propguard, before anything is blamed on propguard (Glance's polling
deadlines are short). Such a test is forgiven once: it is named and written
to the flake ledger, and the run that sees it a second time fails, naming
it. The ledger lives outside the clone, so that a fresh clone still finds
it: ``PROPGUARD_GLANCE_FLAKE_LEDGER``, else
``$XDG_CACHE_HOME/propguard/glance-flakes.json`` (``~/.cache/...``). A CI
runner that keeps its home directory carries it from run to run; one that starts empty each time must cache that file, or every
flake is seen for the first time. The run prints the ledger's path and what
it held before.

By hand: ``.venv/bin/python tests/glance_suite/glance_suite_runner.py
{baseline,transparency,protections} [--service-role-mode union] [node ids]``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from glance_suite_runner import (
    PERMISSIVE_RULES,
    PROTECTION_MODULES,
    SUITE_MODULES,
    SuiteRun,
    run_suite,
    xdist_available,
)

pytestmark = pytest.mark.glance

V2 = "glance/tests/functional/v2/"

#: Every test of SUITE_MODULES in Glance 33.0.0 (pytest's count, ``ImageAPIHelper``
#: not being a test); a different number means the selection changed.
SUITE_SIZE = 266

_NO_DNS = (
    "needs DNS: {what} http://example.com, whose host Glance resolves before it "
    "accepts the request (glance.common.utils.normalize_hostname, getaddrinfo); "
    "this machine has no resolver, so Glance answers 400 {instead}"
)

#: Fail without propguard too; deselected from the propguard runs (reason each).
BASELINE_FAILURES: dict[str, str] = {
    V2 + "test_images.py::TestKeystoneQuotas::test_stage": _NO_DNS.format(
        what="web-download import of", instead="instead of 202"
    ),
    V2 + "test_tasks.py::TestTasks::test_task_lifecycle": _NO_DNS.format(
        what="POST /v2/tasks importing from", instead="instead of 201"
    ),
    V2 + "test_tasks_api_policy.py::TestTasksPolicy::test_tasks_create_basic": _NO_DNS.format(
        what="POST /v2/tasks importing from", instead="(its body then is not JSON)"
    ),
    V2 + "test_tasks_api_policy.py::TestTasksPolicy::test_tasks_get_basic": _NO_DNS.format(
        what="POST /v2/tasks importing from", instead="(its body then is not JSON)"
    ),
    V2 + "test_tasks_api_policy.py::TestTasksPolicy::test_tasks_index_basic": _NO_DNS.format(
        what="POST /v2/tasks importing from", instead="(its body then is not JSON)"
    ),
}

#: Run ``qemu-img`` (create a qcow2, convert); excluded only where it is missing.
NEEDS_QEMU_IMG: tuple[str, ...] = (
    V2 + "test_images.py::TestImagesSingleStore::test_image_import_qcow_virtual_size_calculation",
    V2 + "test_images.py::TestImagesSingleStore::test_image_upload_qcow_virtual_size_calculation",
    V2 + "test_parallel_store_import.py::TestParallelStoreImport::"
    "test_parallel_all_stores_must_succeed_failure_with_image_conversion",
    V2 + "test_parallel_store_import.py::TestParallelStoreImport::"
    "test_parallel_bare_raw_multi_store_success",
)

#: Skipped by Glance's own code, with or without propguard.
GLANCE_SKIPS: dict[str, str] = {
    V2 + "test_image_decompression.py::TestImageDecompression::"
    "test_decompress_lha_no_library_error": "Glance: skipTest('Failing intermittently')",
    V2 + "test_image_decompression.py::TestImageDecompression::"
    "test_decompress_lha_with_glance_direct": "Glance: lhafile library not available "
    "(not in Glance's test requirements)",
}


#: The collected tests that start no glance-api (``SynchronousAPIBase.start_server``),
#: each with why. Every other test of the selection builds one, propguard in it.
NO_SERVER: dict[str, str] = {
    V2 + "test_image_decompression.py::TestImageDecompression::"
    "test_decompress_lha_no_library_error": "@testtools.skip('Failing intermittently') "
    "skips it before its first line (start_server)",
    V2 + "test_image_decompression.py::TestImageDecompression::"
    "test_decompress_lha_with_glance_direct": "@testtools.skipIf(lhafile missing) skips it "
    "before its first line (start_server)",
}


@dataclass(frozen=True)
class Difference:
    """A Glance defect a (b) test asserts and propguard deliberately fixes."""

    readme: str  # the docs/differences.md row that explains it
    failure_contains: str  # what the test's failure must say


#: (b) tests expected to fail because propguard fixes what they assert.
EXPECTED_DIFFERENT: dict[str, Difference] = {}

WORKERS = int(os.environ.get("PROPGUARD_GLANCE_WORKERS", "3"))


def qemu_img_missing() -> bool:
    return shutil.which("qemu-img") is None


def excluded() -> list[str]:
    return [*BASELINE_FAILURES, *(NEEDS_QEMU_IMG if qemu_img_missing() else ())]


def flake_ledger() -> Path:
    """Where forgiven flakes are remembered between runs: outside the clone (a
    ledger inside it would start empty with every fresh clone, as CI's are)."""
    override = os.environ.get("PROPGUARD_GLANCE_FLAKE_LEDGER")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "propguard" / "glance-flakes.json"


def forgive_once(flaky: list[str], ledger: Path) -> list[str]:
    """Record ``flaky`` (failed in the shared run, passed alone); return those seen before."""
    seen: dict[str, str] = json.loads(ledger.read_text()) if ledger.exists() else {}
    before = f"{len(seen)} earlier entries" if seen else "empty before this run"
    print(f"flake ledger {ledger}: {before}")
    again = [t for t in flaky if t in seen]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    seen.update({t: seen.get(t, now) for t in flaky})
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_text(json.dumps(seen, indent=1, sort_keys=True) + "\n")
    return [f"{t} (first forgiven {seen[t]})" for t in again]


def explain(run: SuiteRun, tests: list[str]) -> str:
    return "\n\n".join(f"--- {t}\n{run.failure_text(t)}" for t in tests)


@pytest.fixture(scope="module")
def transparency(tmp_path_factory) -> SuiteRun:
    workers = WORKERS if xdist_available() else 0
    return run_suite(
        "transparency",
        tmp_path_factory.mktemp("glance-transparency"),
        modules=SUITE_MODULES,
        exclude=excluded(),
        workers=workers,
    )


def test_transparency_every_baseline_test_passes(transparency: SuiteRun, tmp_path):
    """(a) With everything allowed, propguard changes the outcome of no test.

    Glance's tests poll with short deadlines (2-10 s) and run in parallel
    here, so a loaded machine can fail one. A failed test is therefore run
    again, alone, with propguard, then without: it counts against propguard
    only if it fails with propguard and passes without it.
    """
    run = transparency
    print(run.summary())
    assert sorted(run.excluded) == sorted(excluded())
    assert len(run.collected) + len(run.excluded) == SUITE_SIZE, run.summary()
    skipped = run.with_outcome("skipped")
    assert skipped == sorted(GLANCE_SKIPS), run.summary()
    failed = sorted(t for t in run.not_passed if t not in GLANCE_SKIPS)
    if not failed:
        return
    again = run_suite("transparency", tmp_path / "again", test_ids=failed)
    still = [t for t in failed if again.tests.get(t, {}).get("outcome") != "passed"]
    flaky = sorted(set(failed) - set(still))
    print(f"failed once, passed alone with propguard (timing), forgiven once: {flaky}")
    repeated = forgive_once(flaky, flake_ledger())
    assert not repeated, (
        "flaked before and forgiven then; a second time is a failure (fix the cause, or list "
        f"the test in BASELINE_FAILURES/NEEDS_* with why): {repeated}"
    )
    if not still:
        return
    without = run_suite("baseline", tmp_path / "without", test_ids=still)
    environment = [t for t in still if without.tests.get(t, {}).get("outcome") != "passed"]
    caused = [t for t in still if t not in environment]
    assert not caused, f"fail only with propguard:\n{explain(again, caused)}"
    pytest.fail(
        "fail without propguard too (list them in BASELINE_FAILURES with the reason):\n"
        + explain(without, environment)
    )


def test_a_forgiven_flake_fails_the_second_time(tmp_path):
    ledger = tmp_path / "flakes.json"
    assert forgive_once(["glance.tests.a::t1"], ledger) == []
    (repeated,) = forgive_once(["glance.tests.a::t1", "glance.tests.b::t2"], ledger)
    assert repeated.startswith("glance.tests.a::t1 (first forgiven ")
    assert forgive_once([], ledger) == []
    assert set(json.loads(ledger.read_text())) == {"glance.tests.a::t1", "glance.tests.b::t2"}


def test_the_flake_ledger_outlives_the_clone(monkeypatch, tmp_path):
    """A fresh clone (CI's) must still find the flakes forgiven before."""
    monkeypatch.delenv("PROPGUARD_GLANCE_FLAKE_LEDGER", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    clone = Path(__file__).resolve().parents[2]
    assert not flake_ledger().is_relative_to(clone)
    assert flake_ledger() == Path.home() / ".cache" / "propguard" / "glance-flakes.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert flake_ledger() == tmp_path / "propguard" / "glance-flakes.json"
    monkeypatch.setenv("PROPGUARD_GLANCE_FLAKE_LEDGER", str(tmp_path / "l.json"))
    assert flake_ledger() == tmp_path / "l.json"


def test_transparency_propguard_was_in_every_pipeline(transparency: SuiteRun):
    """Each test that built glance-api built propguard into it, and requests went through it."""
    run = transparency
    started = {t: r for t, r in run.tests.items() if t in run.collected and r["servers"]}
    no_server = sorted(set(run.collected) - set(started))
    assert no_server == sorted(NO_SERVER), (
        "the tests that started no glance-api are not NO_SERVER's: "
        f"unexpected {sorted(set(no_server) - set(NO_SERVER))}, "
        f"listed but started one or not collected {sorted(set(NO_SERVER) - set(no_server))}"
    )
    missing = [t for t, r in started.items() if r["propguard_filters"] < r["servers"]]
    assert not missing, missing
    assert sum(r["propguard_requests"] for r in started.values()) > 5 * len(started)
    permissive = {str(PERMISSIVE_RULES)}
    for test_id, record in started.items():
        if record["glance_protection"] is None:
            assert {r["rules_file"] for r in record["propguard_rules"]} == permissive, test_id


def test_every_property_protection_test_runs_under_propguard(transparency: SuiteRun):
    """(b)'s selection is every test of the suite that configures Glance's protections."""
    configuring = sorted(t for t, r in transparency.tests.items() if r["glance_protection"])
    assert len(configuring) == 16, configuring
    modules = {m.rsplit(".", 1)[1] + ".py" for m in PROTECTION_MODULES}
    outside = [t for t in configuring if t.split("::")[0].rsplit("/", 1)[1] not in modules]
    assert not outside, f"configure property_protection_file but (b) does not run them: {outside}"


@pytest.mark.parametrize("service_role_mode", ["strict", "union"])
def test_property_protection_tests_pass_with_propguard_enforcing(service_role_mode, tmp_path):
    """(b) Glance's protection tests, propguard enforcing their rules instead of Glance."""
    run = run_suite(
        "protections",
        tmp_path,
        modules=PROTECTION_MODULES,
        service_role_mode=service_role_mode,
    )
    print(run.summary())
    assert len(run.collected) == 16, run.summary()
    formats = set()
    for test_id in run.collected:
        record = run.tests[test_id]
        glance = record["glance_protection"]
        assert glance, f"{test_id} configures no property_protection_file"
        formats.add(glance["format"])
        assert record["glance_property_rules"] == 0, f"Glance enforced in {test_id}"
        assert record["propguard_rules"], f"no propguard filter built in {test_id}"
        for rules in record["propguard_rules"]:
            assert rules["rules_file"] == glance["file"], test_id
            assert rules["rule_format"] == glance["format"], test_id
            assert rules["service_role_mode"] == service_role_mode, test_id
            assert ("policy_file" in rules) == (glance["format"] == "policies"), test_id
    assert formats == {"roles", "policies"}
    for test_id, difference in EXPECTED_DIFFERENT.items():
        assert run.tests[test_id]["outcome"] == "failed", (
            f"{test_id} no longer shows the deliberate difference: {difference.readme}"
        )
        assert difference.failure_contains in run.failure_text(test_id, 20000), test_id
    failed = sorted(t for t in run.not_passed if t not in EXPECTED_DIFFERENT)
    assert not failed, f"fail only with propguard enforcing:\n{explain(run, failed)}"


def test_baseline_failures_still_fail_without_propguard(tmp_path):
    """The exclusions stay honest: without propguard they fail, Glance's skips skip."""
    ids = [*BASELINE_FAILURES, *GLANCE_SKIPS]
    run = run_suite("baseline", tmp_path, test_ids=ids)
    print(run.summary())
    assert sorted(run.collected) == sorted(ids)
    outcomes = {t: run.tests[t]["outcome"] for t in ids}
    assert outcomes == {
        **{t: "failed" for t in BASELINE_FAILURES},
        **{t: "skipped" for t in GLANCE_SKIPS},
    }
    for test_id in BASELINE_FAILURES:
        text = run.failure_text(test_id, 20000)
        assert "400" in text or "JSONDecodeError" in text, text


def test_qemu_img_tests_are_run():
    """Visible when the qemu-img tests could not run (not installed on this machine)."""
    if qemu_img_missing():
        pytest.skip(
            "qemu-img is not installed (scripts/install-glance-suite-deps.sh installs it): "
            f"{len(NEEDS_QEMU_IMG)} of Glance's tests were excluded: " + ", ".join(NEEDS_QEMU_IMG)
        )


def test_trust_identity_headers_stays_off_by_default():
    """Only these test pipelines opt in; the option's default is unchanged."""
    from propguard import opts

    (option,) = [
        o for _, group in opts.list_opts() for o in group if o.name == "trust_identity_headers"
    ]
    assert option.default is False
