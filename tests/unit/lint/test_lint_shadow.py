"""``propguard lint`` reads the shadow rules file as the filter loads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = "[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n"


def _lint(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "propguard.cli", "lint", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_broken_shadow_file_is_an_error_as_in_the_filter(tmp_path: Path) -> None:
    rules = tmp_path / "rules.conf"
    rules.write_text(GOOD)
    shadow = tmp_path / "next.conf"
    shadow.write_text(GOOD.replace("delete = admin\n", ""))  # no delete: PG105 in the loader
    clean = _lint("--rules-file", str(rules))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    result = _lint("--rules-file", str(rules), "--shadow-rules-file", str(shadow))
    assert result.returncode == 1
    assert f"{shadow}:1:1: PG105 error" in result.stdout


def test_the_shadow_file_is_read_in_its_own_format(tmp_path: Path) -> None:
    rules = tmp_path / "rules.conf"
    rules.write_text(GOOD)
    shadow = tmp_path / "next.conf"
    shadow.write_text(GOOD.replace("admin", "context_is_admin"))  # a policy name
    result = _lint(
        "--rules-file", str(rules), "--shadow-rules-file", str(shadow),
        "--shadow-rule-format", "policies",
    )
    assert result.returncode == 0, result.stdout + result.stderr
