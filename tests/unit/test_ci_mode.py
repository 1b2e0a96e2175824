"""The CI rules of ``tests/conftest.py``, run on a throwaway test tree in a subprocess.

Why: they decide whether a green CI run means anything, so they are tested
like code: a skip (at run time, by ``skipif``, at collection) fails under
``CI`` set to anything and passes outside it; a shrinking knob stops CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

SKIPPING = {
    "test_run.py": "import pytest\n\ndef test_a():\n    pytest.skip('no Chromium here')\n",
    "test_mark.py": (
        "import pytest\n\n@pytest.mark.skipif(True, reason='platform fact')\ndef test_b():\n"
        "    pass\n"
    ),
    "test_ok.py": "def test_c():\n    assert True\n",
}
COLLECT_SKIP = "import pytest\n\npytest.importorskip('no_such_module_here')\n"


def _run(tree: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PROPGUARD_")}
    clean["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a bare pytest: these runs stay short
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", str(tree)],
        cwd=tree,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("conftest.py", "ci_mode.py", "explore.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    for name, text in SKIPPING.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_outside_ci_skips_are_skips(tree: Path) -> None:
    (tree / "test_collect.py").write_text(COLLECT_SKIP)
    result = _run(tree, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped" in result.stdout


@pytest.mark.parametrize("value", ["true", ""])
def test_under_ci_every_skip_fails_the_session(tree: Path, value: str) -> None:
    """``CI`` set to anything, even empty: a ``skip`` and a ``skipif`` are failures."""
    result = _run(tree, {"CI": value})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed, 1 error" in result.stdout, result.stdout  # skipif: at setup
    for reason in ("no Chromium here", "platform fact"):
        assert f"CI never skips: {reason}" in result.stdout, result.stdout


def test_under_ci_a_module_skipped_at_collection_fails(tree: Path) -> None:
    (tree / "test_collect.py").write_text(COLLECT_SKIP)
    result = _run(tree, {"CI": "1"})
    assert result.returncode == 2, result.stdout + result.stderr  # a collection error
    assert "CI never skips: could not import 'no_such_module_here'" in result.stdout


def test_under_ci_shrinking_knobs_stop_the_session(tree: Path) -> None:
    knobs = [
        "PROPGUARD_PROXY_STREAM_MIB",
        "PROPGUARD_DIFFERENTIAL_EXAMPLES",
        "PROPGUARD_UPDATE_GOLDEN",
    ]
    result = _run(tree, {"CI": "true", **dict.fromkeys(knobs, "1")})
    assert result.returncode == 4, result.stdout + result.stderr  # usage error: nothing ran
    assert "refusing knobs that shrink a check" in result.stderr
    assert all(knob in result.stderr for knob in knobs), result.stderr
    assert _run(tree, dict.fromkeys(knobs, "1")).returncode == 0  # outside CI: allowed
