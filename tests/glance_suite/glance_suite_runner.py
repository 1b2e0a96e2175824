"""Run Glance 33.0.0's functional tests in a subprocess, with or without propguard.

Used by ``test_glance_suite.py`` and, from the command line, to measure a
mode by hand (counts and the tests that did not pass)::

    .venv/bin/python tests/glance_suite/glance_suite_runner.py baseline
    .venv/bin/python tests/glance_suite/glance_suite_runner.py transparency
    .venv/bin/python tests/glance_suite/glance_suite_runner.py protections --service-role-mode union

The subprocess is ``python -P -m pytest --pyargs <Glance's test modules>``
with ``propguard_glance_plugin`` (next to this file) loaded, run from a
scratch directory that holds only ``glance/tests/etc`` (Glance's tests copy
their data files from that relative path, and write ``run_tests.log`` into
the current directory). ``-c /dev/null`` keeps propguard's own pytest
configuration (``pyproject.toml``) out of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLUGIN = "propguard_glance_plugin"
PERMISSIVE_RULES = HERE / "permissive-rules.conf"

#: Glance's functional tests of its API pipelines: issue 12 asks for v2/ and
#: the gzip test; the other middleware modules add the cors, cache,
#: healthcheck and version-negotiation pipelines. Not here: serial/ (the
#: scrubber command, minutes), image_cache/drivers/ and db/ (no pipeline),
#: test_glance_manage.py (a command).
SUITE_MODULES = (
    "glance.tests.functional.v2",
    "glance.tests.functional.test_gzip_middleware",
    "glance.tests.functional.test_api",
    "glance.tests.functional.test_cors_middleware",
    "glance.tests.functional.test_cache_middleware",
    "glance.tests.functional.test_healthcheck_middleware",
    "glance.tests.functional.test_logging",
    "glance.tests.functional.test_sqlite",
    "glance.tests.functional.test_staging_cleanup",
)
#: Glance's functional tests that configure ``property_protection_file``.
PROTECTION_MODULES = ("glance.tests.functional.v2.test_property_protection",)


def site_packages() -> Path:
    """The directory holding the installed ``glance`` package (pytest's rootdir here)."""
    import glance

    return Path(glance.__file__).resolve().parent.parent


def xdist_available() -> bool:
    try:
        import xdist  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class SuiteRun:
    """What one subprocess run did, from the plugin's records."""

    mode: str
    service_role_mode: str
    returncode: int
    seconds: float
    log: Path
    collected: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_outcome(self, outcome: str | None) -> list[str]:
        return sorted(t for t in self.collected if self.tests.get(t, {}).get("outcome") == outcome)

    @property
    def passed(self) -> list[str]:
        return self.with_outcome("passed")

    @property
    def not_passed(self) -> dict[str, str]:
        """Collected tests that did not pass (failed, skipped, or never reported)."""
        return {
            t: self.tests.get(t, {}).get("outcome") or "not run"
            for t in self.collected
            if self.tests.get(t, {}).get("outcome") != "passed"
        }

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {"collected": len(self.collected)}
        for outcome in self.not_passed.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        counts["passed"] = len(self.passed)
        return counts

    def failure_text(self, test_id: str, limit: int = 2500) -> str:
        return self.tests.get(test_id, {}).get("longrepr", "")[-limit:]

    def summary(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in self.counts().items())
        return f"{self.mode} ({self.service_role_mode}): {counts} in {self.seconds:.0f} s"


def node_path(test_id: str) -> str:
    """A node id (relative to site-packages, as the plugin records it) as a pytest argument."""
    return str(site_packages() / test_id)


def run_suite(
    mode: str,
    workdir: Path,
    *,
    modules: Sequence[str] = SUITE_MODULES,
    test_ids: Sequence[str] = (),
    exclude: Iterable[str] = (),
    service_role_mode: str = "strict",
    workers: int = 0,
    timeout: float = 1500,
    python: str = sys.executable,
) -> SuiteRun:
    """Run Glance's tests (``test_ids`` if given, else ``modules``, less
    ``exclude``: exact node ids) in ``mode``."""
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / "cwd"
    etc = scratch / "glance" / "tests" / "etc"
    if not etc.exists():
        shutil.copytree(site_packages() / "glance" / "tests" / "etc", etc)
    record = workdir / f"{mode}-{service_role_mode}.json"
    for old in workdir.glob(record.name + "*"):
        old.unlink()
    log = workdir / f"{mode}-{service_role_mode}.log"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])]),
        PROPGUARD_GLANCE_MODE=mode,
        PROPGUARD_GLANCE_PERMISSIVE_RULES=str(PERMISSIVE_RULES),
        PROPGUARD_GLANCE_SERVICE_ROLE_MODE=service_role_mode,
        PROPGUARD_GLANCE_RECORD=str(record),
        PROPGUARD_GLANCE_EXCLUDE="\n".join(exclude),
    )
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    command = [
        python,
        "-P",  # the scratch directory's glance/ must not shadow the package
        "-m",
        "pytest",
        "-c",
        os.devnull,
        "--rootdir",
        str(site_packages()),
        "-p",
        "no:cacheprovider",
        "-p",
        PLUGIN,
        "-q",
        "-W",
        "ignore::DeprecationWarning",
    ]
    if workers > 1:
        command += ["-n", str(workers)]
    elif xdist_available():
        command += ["-p", "no:xdist"]
    if test_ids:
        command += [node_path(t) for t in test_ids]
    else:
        command += ["--pyargs", *modules]
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(
            command, cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    seconds = time.monotonic() - started
    run = SuiteRun(mode, service_role_mode, done.returncode, seconds, log)
    files = sorted(workdir.glob(record.name + "*"))
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        run.collected.extend(t for t in data["collected"] if t not in run.collected)
        run.excluded.extend(t for t in data["excluded"] if t not in run.excluded)
        run.tests.update(data["tests"])
    if not files or done.returncode not in (0, 1):
        # 2-5: interrupted, internal error, usage error, nothing collected.
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"Glance's test run exited {done.returncode}; end of {log}:\n{tail}")
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("baseline", "transparency", "protections"))
    parser.add_argument("--service-role-mode", default="strict", choices=("strict", "union"))
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (0: none)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/propguard-glance-suite"))
    parser.add_argument("tests", nargs="*", help="node ids (default: the whole selection)")
    args = parser.parse_intermixed_args(argv)
    modules = PROTECTION_MODULES if args.mode == "protections" else SUITE_MODULES
    run = run_suite(
        args.mode,
        args.workdir,
        modules=modules,
        test_ids=args.tests,
        service_role_mode=args.service_role_mode,
        workers=args.workers,
    )
    for test_id, outcome in sorted(run.not_passed.items()):
        print(f"{outcome:8} {test_id}")
    print(run.summary())
    print(f"log: {run.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
