"""The benchmarks print progress (stderr) and keep third-party warnings out of their tables.

Was: bench_glance_list.py ran about a minute with no output, and bench_filter.py
printed Glance's policy warning and propguard's start-up warnings in the middle
of its table. Run here on small sizes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.glance


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_bench_filter_table_is_clean_and_progress_shown():
    result = _run("bench_filter.py", "--rounds", "1", "--sizes", "25")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("python ") and lines[1].startswith("format")
    rows = lines[2:]
    assert [r.split()[0] for r in rows] == ["roles", "policies"]
    for row in rows:
        assert re.fullmatch(r"(roles|policies)\s+25(\s+[\d.]+ ms){5}(\s+[\d.]+x){3}", row), row
    assert re.findall(r"^measuring .*", result.stderr, re.M) == [
        "measuring roles, 25 images (1 rounds)...",
        "measuring policies, 25 images (1 rounds)...",
    ]
    assert "reference a rule that is not defined" not in result.stdout + result.stderr
    assert "name_collation" not in result.stdout + result.stderr


def test_bench_glance_list_reports_progress():
    result = _run("bench_glance_list.py", "--images", "3", "--requests", "2", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    progress = result.stderr.splitlines()
    assert sum(line.startswith("round 1/1: ") for line in progress) == 3
    assert sum(line.startswith("  done in ") for line in progress) == 3
    table = result.stdout.splitlines()
    assert table[0].startswith("GET /v2/images?limit=3")
    assert [line.split()[0] for line in table[1:4]] == ["none", "glance", "propguard"]
    assert table[4].startswith("propguard's own time per request")
    assert len(table) == 5
