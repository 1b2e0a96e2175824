"""A section no folded name can match is a load error (PG119), in the filter and lint alike,
and explain, matrix and the filter decide every spelling alike under each collation.

Issue 18 point 2: under ``name_collation = mysql_any`` a section ``[^Licence_]``
silently never applied (every name is decided as its folded spelling
``licence_…``), so a later ``[.*]`` decided ``Licence_…`` names: fail open.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propguard import cli, middleware
from propguard.explain import explain
from propguard.glance.collation import COLLATIONS, folding
from propguard.lint import LintOptions, lint_paths
from propguard.matrix import matrix, parse_role_sets
from propguard.rules.folded import fold_image, liveness
from propguard.rules.loading import RulesOptions
from propguard.rules.model import OPERATIONS, RulesError

FOLDING = [c for c in COLLATIONS if c != "binary"]
OPS = "\n".join(f"{op} = {{v}}" for op in OPERATIONS)
DEAD = f"[^Licence_]\n{OPS.format(v='admin')}\n\n[.*]\n{OPS.format(v='@')}\n"
LIVE = (
    f"[^licence_]\n{OPS.format(v='admin')}\n\n[^billing_|^cost$]\n{OPS.format(v='admin,member')}\n\n"
    f"[_key$]\n{OPS.format(v='member')}\n\n[.*]\n{OPS.format(v='@')}\n"
)


def _app(environ, start_response):  # pragma: no cover - never called
    return []


def _filter(path, collation):
    return middleware.filter_factory({}, rules_file=str(path), name_collation=collation)(_app)


@pytest.mark.parametrize("collation", FOLDING)
def test_filter_refuses_a_section_no_folded_name_matches(tmp_path, collation):
    """Was: the filter loaded [^Licence_] under a folding collation and it never applied."""
    rules = tmp_path / "rules.conf"
    rules.write_text(DEAD)
    with pytest.raises(RulesError) as raised:
        _filter(rules, collation)
    (problem,) = raised.value.problems
    assert problem.code == "PG119"
    assert (problem.position.file, problem.position.line) == (str(rules), 1)
    assert "'Licence_' is decided as 'licence_'" in problem.message
    assert problem.hint.startswith("write [^licence_]")
    # lint: the same problem, an error, and exit 1
    lint = lint_paths([str(rules)], LintOptions(rules=RulesOptions(name_collation=collation)))
    assert [str(p) for p in lint] == [str(problem)]
    assert cli.main(["lint", str(rules), "--name-collation", collation, "-q"]) == 1
    for command in (["explain", "--rules", str(rules), "x"], ["matrix", "--rules", str(rules)]):
        extra = ["--roles-sets", "member"] if command[0] == "matrix" else []
        assert cli.main([*command, *extra, "--name-collation", collation]) == 1


def test_binary_loads_it(tmp_path):
    rules = tmp_path / "rules.conf"
    rules.write_text(DEAD)
    assert _filter(rules, "binary").rules.current().section_for("Licence_x").pattern == "^Licence_"


@pytest.mark.parametrize("collation", FOLDING)
def test_a_dead_alternative_is_refused_too(tmp_path, collation):
    """`^Billing_` in [^Billing_|^licence_] never applies: billing_x would fall through."""
    rules = tmp_path / "rules.conf"
    rules.write_text(
        f"[^Billing_|^licence_]\n{OPS.format(v='admin')}\n\n[.*]\n{OPS.format(v='@')}\n"
    )
    with pytest.raises(RulesError) as raised:
        RulesOptions(rules_file=str(rules), name_collation=collation).load()
    (problem,) = raised.value.problems
    assert "alternative '^Billing_'" in problem.message
    assert problem.hint.startswith("write '^billing_' instead")


def test_mysql_any_folds_runs_of_s():
    """mysql_any takes 'ss' as 's' (ß = s and ß = ss): [^password] can never match there."""
    assert liveness("^password", folding("mysql_any")).alive is False
    assert liveness("^password", folding("utf8mb3_general_ci")).alive is True
    assert liveness("^pasword", folding("mysql_any")).alive is True


def test_auto_in_the_tools_is_binary_without_a_connection_and_says_so(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(DEAD)
    assert cli.main(["lint", str(rules), "--rules-format", "roles"]) == 0
    assert "no [database] connection" in capsys.readouterr().err
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        f"[database]\nconnection = mysql+pymysql://g:g@db/glance\n[propguard]\nrules_file = {rules}\n"
    )
    assert cli.main(["lint", "--config-file", str(conf)]) == 1
    err = capsys.readouterr().err
    assert "utf8mb3_general_ci, from [database] connection (mysql+pymysql)" in err
    assert cli.main(["explain", "--config-file", str(conf), "x"]) == 1


# -- the check itself --------------------------------------------------------------------

PATTERN_PARTS = ["^", "$", "a", "A", "é", "s", "ss", "_", " ", "[a-c]", "[A-C]", ".", "x", "K"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(PATTERN_PARTS), min_size=1, max_size=5),
    st.lists(st.text(alphabet="aAéÉsSßxXK_ ", min_size=1, max_size=6), min_size=1, max_size=20),
    st.sampled_from(FOLDING),
)
def test_dead_means_dead(parts, names, collation):
    """A pattern called dead matches no folded name; for general_ci an alive one matches one."""
    pattern = "".join(parts)
    try:
        search = re.compile(pattern).search
    except re.error:
        return
    f = folding(collation)
    live = liveness(pattern, f)
    if live.alive is False:
        assert not any(search(f.fold(n)) for n in names)
    elif live.alive:
        assert search(live.example) and fold_image(f).contains(live.example)


# -- lint, explain, matrix and the filter agree on every spelling -------------------------

ROLE_SETS = "member;admin;-;admin+member"
SPELLINGS = st.text(alphabet=string.ascii_letters + "_éÉèßı İ ", min_size=1, max_size=12)
BASES = ["licence_x", "billing_a", "cost", "secret_key", "other", "Licence_X", "COST "]


def _agreement(tmp_path, collation, names):
    rules = tmp_path / "rules.conf"
    if not rules.exists():
        rules.write_text(LIVE)
    filt = _filter(rules, collation)
    view = filt.view.rules(filt.rules.current())
    options = RulesOptions(rule_format="roles", name_collation=collation)
    found = lint_paths([str(rules)], LintOptions(rules=options))
    assert not [p for p in found if p.severity == "error"]
    engine = options.with_file(str(rules)).load()
    f = folding(collation)
    sets = parse_role_sets(ROLE_SETS)
    table = matrix(engine.document, engine, sets, True, f)
    rows = {row["section"]: row for row in table["rows"]}
    for name in names:
        section = engine.section_for(f.fold(name))
        row = rows[section.pattern]
        assert row["example"] is not None  # the section the filter routes to is reachable
        for rs, cell in zip(sets, row["cells"], strict=True):
            said = explain(engine.document, engine, name, list(OPERATIONS), rs.creds, f)
            for d in said["decisions"]:
                filter_says = view.allowed(name, d["op"], rs.creds)
                assert d["allowed"] == filter_says == cell[d["op"]], (name, rs.label, d)
                assert d["section"] == section.pattern


@pytest.mark.parametrize("collation", COLLATIONS)
def test_every_spelling_is_decided_alike(tmp_path, collation):
    _agreement(tmp_path, collation, BASES)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.one_of(SPELLINGS, st.sampled_from(BASES)), min_size=1, max_size=8))
    def run(names):
        _agreement(tmp_path, collation, names)

    run()


def test_explain_cli_says_what_it_decided(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(LIVE)
    args = ["explain", "--rules", str(rules), "--roles", "member", "LICENCE_x", "read"]
    assert cli.main([*args, "--name-collation", "utf8mb3_general_ci"]) == 0
    out = capsys.readouterr().out
    assert "decided as 'licence_x'" in out and "DENIED  by [^licence_]" in out
    assert cli.main([*args, "--name-collation", "binary"]) == 0
    assert "ALLOWED by [.*]" in capsys.readouterr().out
