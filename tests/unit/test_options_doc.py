"""docs/options.md is what ``scripts/gen_options_doc.py`` writes from the options today.

As ``test_service_units.test_sample_config_is_what_the_generator_writes`` does
for the sample configuration: an option added, renamed, re-typed or given
another default or help fails here until the reference is regenerated.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_options_doc.py"
DOC = ROOT / "docs" / "options.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_options_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_options_doc_is_what_the_generator_writes():
    fresh = _generator().render()
    assert DOC.read_text(encoding="utf-8") == fresh, (
        "docs/options.md is stale: run .venv/bin/python scripts/gen_options_doc.py"
    )


def test_every_option_is_in_the_reference():
    """Each oslo.config option of every propguard group and each proxy paste option, once per group."""
    from propguard.opts import list_opts
    from propguard.proxy.app import PROXY_OPTS

    text = DOC.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `\[([^\]]+)\]`[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    groups = [*list_opts(), ("app:proxy", PROXY_OPTS)]
    assert set(sections) == {group for group, _ in groups}
    for group, opts in groups:
        documented = re.findall(r"^### `([^`]+)`$", sections[group], re.M)
        assert documented == [opt.name for opt in opts], group
        for opt in opts:
            assert opt.help, f"[{group}] {opt.name} has no help for the reference"


def test_check_mode_says_when_the_doc_is_stale(tmp_path):
    """``--check`` (what a release checks) exits 1 naming the command on a changed file."""
    copy = tmp_path / "scripts"
    copy.mkdir()
    (copy / "gen_options_doc.py").write_text(SCRIPT.read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "options.md").write_text(DOC.read_text() + "edited\n")
    result = subprocess.run(
        [sys.executable, str(copy / "gen_options_doc.py"), "--check"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1, result.stderr
    assert "docs/options.md is stale: run .venv/bin/python scripts/gen_options_doc.py" in (
        result.stderr
    )
