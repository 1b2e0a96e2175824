"""One fixture per finding code, each producing exactly that finding."""

from __future__ import annotations

import pytest
from lint_helpers import CODES_DIR, fixture_options

from propguard.lint import CODES, lint_paths

FIXTURES = sorted(p for p in CODES_DIR.iterdir() if p.name.startswith("PG"))


def test_every_code_has_a_fixture():
    covered = {p.name.split(".")[0] for p in FIXTURES}
    # PG4xx are propguard check's deployment findings: test_check_deployment.py covers each.
    assert covered == {c for c in CODES if not c.startswith("PG4")}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_gives_exactly_its_finding(path, monkeypatch):
    monkeypatch.chdir(CODES_DIR)
    problems = lint_paths([path.name], fixture_options(path))
    code = path.name.split(".")[0]
    assert [p.code for p in problems] == [code], [str(p) for p in problems]
    (problem,) = problems
    assert problem.severity == CODES[code].severity
    assert problem.position.file == path.name or problem.position.file.startswith("<")
    assert problem.position.line >= 1 and problem.position.column >= 1
    assert problem.message and "\n" not in problem.message


def test_witnesses_are_concrete(monkeypatch):
    monkeypatch.chdir(CODES_DIR)
    (shadow,) = lint_paths(["PG202.conf"], fixture_options(CODES_DIR / "PG202.conf"))
    assert shadow.message.startswith(
        "[^x_foo_.*] can never match: every name matched by [^x_foo_.*] is taken by "
        "[^x_.*] (line 1), e.g. 'x_foo_'"
    )
    (overlap,) = lint_paths(["PG203.conf"], fixture_options(CODES_DIR / "PG203.conf"))
    assert "e.g. 'ab' is taken by [^a.*]" in overlap.message
    (loose,) = lint_paths(["PG204.conf"], fixture_options(CODES_DIR / "PG204.conf"))
    assert "'xspl_read_prop_2'" in loose.message
