"""Quiet, quick set-up: SPDX license, no reinstall when nothing changed, progress shown."""

from __future__ import annotations

import configparser
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup-venv.sh"


def test_license_is_an_spdx_expression_without_license_classifiers():
    """Was: setuptools printed about 40 lines of "License classifiers are deprecated"."""
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "setup.cfg")
    metadata = parser["metadata"]
    assert metadata["license_expression"] == "Apache-2.0"
    assert "license" not in metadata
    assert "License ::" not in metadata.get("classifier", "")
    assert '"setuptools>=77"' in (ROOT / "pyproject.toml").read_text()  # reads license_expression


def _fake_venv(tmp_path: Path, pip_exit: int) -> Path:
    """A venv whose python answers the version query and logs (then fails) pip runs."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = -c ]; then exec {sys.executable} "$@"; fi\n'
        f'echo "$@" >> {tmp_path}/calls\n'
        'echo "Collecting something-quite-long"\n'
        f"exit {pip_exit}\n"
    )
    python.chmod(0o755)
    return venv


def _stamp(venv: Path) -> str:
    data = (ROOT / "setup.cfg").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    data += (sys.version + "\n").encode()
    return hashlib.sha256(data).hexdigest()


def _run(venv: Path, extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": str(venv), "PYTHON": "false"}
    return subprocess.run(
        ["bash", str(SCRIPT), extra], capture_output=True, text=True, env=env, timeout=60
    )


def test_nothing_changed_nothing_reinstalled(tmp_path):
    """Was: every demo.sh run reinstalled the package."""
    venv = _fake_venv(tmp_path, pip_exit=1)
    (venv / ".propguard-setup-test").write_text(_stamp(venv) + "\n")
    for extra in ("test", "glance"):  # the test extra includes the glance one
        result = _run(venv, extra)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "" and result.stdout == ""
    assert not (tmp_path / "calls").exists()  # no pip, no python: nothing reinstalled


def test_a_change_installs_again_showing_progress(tmp_path):
    venv = _fake_venv(tmp_path, pip_exit=3)
    (venv / ".propguard-setup-glance").write_text("stale\n")
    result = _run(venv, "glance")
    assert result.returncode == 3
    assert "installing propguard[glance]" in result.stderr
    assert "  Collecting something-quite-long" in result.stderr  # progress, one line a package
    assert "pip failed" in result.stderr and (venv / "pip-install.log").exists()
    assert "-m pip install" in (tmp_path / "calls").read_text()
