"""Root of the test tree.

Being a ``conftest.py`` in ``tests/``, this file makes pytest (default
``prepend`` import mode, no ``__init__.py`` anywhere under ``tests/``) put
``tests/`` on ``sys.path``, so every test module can ``import data_paths``,
the one place that names the shared test data. Module basenames must stay
unique across ``tests/``.

It also holds the CI rules (``ci_mode``): under ``CI`` every skip fails the
session, and knobs that shrink a check are refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ci_mode import in_ci, shrinking_knobs_set
from explore import REPLAY, SEED, exploring


def pytest_configure(config: pytest.Config) -> None:
    """Under CI, refuse to run at all with a knob that shrinks a check (``ci_mode``)."""
    knobs = shrinking_knobs_set()
    if in_ci() and knobs:
        raise pytest.UsageError(
            "CI is set: refusing knobs that shrink a check: " + "; ".join(knobs)
        )


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI (CI is set), and CI never skips: {_skip_reason(report)}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis seed of this run: {SEED} (replay: {REPLAY})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI every skipped test (``skip``, ``skipif``, a fixture's skip) is a failure;
    a failed test of a module exploring with Hypothesis (``explore``) names the run's seed."""
    outcome = yield
    report = outcome.get_result()
    _fail_skip_in_ci(report)
    module = getattr(item, "module", None)
    if report.failed and module is not None and exploring in vars(module).values():
        report.sections.append(("hypothesis seed", f"seed {SEED}: replay with {REPLAY}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Under CI a module skipped at collection (``importorskip``, ``allow_module_level``) fails."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())
