"""The regex-language analysis: exact answers and verified witnesses."""

from __future__ import annotations

import re

import pytest

from propguard.lint.regex import (
    analyse,
    backtracking_risk,
    covered_by_union,
    intersection,
    is_subset,
    shortest_string,
    split_alternatives,
)


def test_split_alternatives_respects_groups_and_classes():
    assert split_alternatives("^a|b$") == ["^a", "b$"]
    assert split_alternatives("^(a|b)[|]c\\|d") == ["^(a|b)[|]c\\|d"]


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        ("^x_.*", "x_foo_.*", True),
        ("^a[0-9]$", "^a[a-z]", False),
        ("^a[0-9]x$", "^a.y", False),  # needs the automaton
        ("^a[0-9]x$", "^a.x", True),
        ("^cls_3_[a-z0-9]+$", ".*_sfx6$", True),
        ("^foo$", "^bar", False),
    ],
)
def test_intersection(earlier, later, expected):
    answer, witness = intersection(analyse(earlier), analyse(later))
    assert answer is expected
    if expected:
        assert re.search(earlier, witness) and re.search(later, witness)


@pytest.mark.parametrize(
    ("small", "big", "expected"),
    [
        ("^x_foo_.*", "^x_.*", True),
        ("x_foo_.*", "^x_.*", False),  # unanchored: 'zx_foo_' is not taken
        ("x_foo_matcher", "x_foo_*", True),
        ("^abc$", "b", True),
        ("^a[0-9]+$", "^a[0-9]", True),
        ("anything", ".*", True),
        ("^a", "^a$", False),
    ],
)
def test_subset(small, big, expected):
    assert is_subset(analyse(small), analyse(big)) is expected


def test_union_coverage_with_witness():
    covered, witness = covered_by_union(analyse("^a.*"), [analyse("^a[a-m]"), analyse("^a[n-z]")])
    assert covered is False and witness == "a"
    covered, _ = covered_by_union(analyse("^a[a-z]"), [analyse("^a[a-m]"), analyse("^a[n-z]")])
    assert covered is True


def test_universal_and_anchors():
    assert analyse(".*").universal and analyse("^").universal and analyse("").universal
    assert not analyse("^$").universal and not analyse("^x_.*").universal
    assert analyse("^foo$").exact == "foo"
    assert analyse("foo").contains_literal == "foo"
    assert not analyse("^.*foo").alternatives[0].start  # a leading .* cancels ^


def test_unsupported_is_reported_not_guessed():
    backref = analyse(r"^ab(c)\1$")
    # conflicting literal prefixes decide without an automaton...
    assert intersection(analyse("^c.*"), backref) == (False, None)
    # ...otherwise the answer is "unknown", never a guess
    assert intersection(analyse("^a.*x$"), backref) == (None, None)
    assert backref.unsupported and "reference" in backref.unsupported


def test_shortest_string_readable():
    assert shortest_string(analyse("^q[0-9]{3}z$").fsm()) == "q000z"


@pytest.mark.parametrize(
    ("pattern", "risky"),
    [
        ("^(a+)+$", True),
        ("(.*)*x", True),
        ("^(a|ab)*c", True),
        ("^x_.*", False),
        ("^a{2,3}b+$", False),
    ],
)
def test_backtracking(pattern, risky):
    assert (backtracking_risk(pattern) is not None) is risky
