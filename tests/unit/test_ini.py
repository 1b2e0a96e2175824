"""The positioned INI reader against ``configparser.ConfigParser()``, as Glance reads rules.

Glance (``glance/common/property_utils.py``) reads the rules file with a plain
``configparser.ConfigParser()`` and ``CONFIG.read(path)``; propguard's reader
must see exactly the same sections, options and values (reference §1.3,
"Config-file quirks inherited from configparser").
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from data_paths import GLANCE_RULES_DIR
from glance_tables import GLANCE_CONFIG_SECTIONS

from propguard.rules.ini import DEFAULT_SECTION, read_ini, split_lines
from propguard.rules.model import Position

GLANCE_FILES = [
    "property-protections.conf",
    "property-protections-policies.conf",
    "property-protections-roles.conf.sample",
    "property-protections-policies.conf.sample",
]


def configparser_view(path: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """What Glance's ``CONFIG.read(conf_file)`` sees: sections (file order) and defaults."""
    parser = configparser.ConfigParser()
    assert parser.read(path, encoding="utf-8") == [str(path)]
    defaults = dict(parser.defaults())
    sections = {}
    for name in parser.sections():
        # parser.items() would mix the defaults in; keep the section's own options.
        own = parser._sections[name]  # noqa: SLF001 - the raw per-section dict
        sections[name] = {opt: parser.get(name, opt, raw=True) for opt in own}
    return sections, defaults


def propguard_view(path: Path) -> tuple[dict[str, dict[str, str]], dict[str, str], list]:
    raw_sections, problems = read_ini(str(path), path.read_text(encoding="utf-8"))
    sections: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    for raw in raw_sections:
        values = {name: opt.value for name, opt in raw.options.items()}
        if raw.name == DEFAULT_SECTION:
            defaults.update(values)
        else:
            sections[raw.name] = values
    return sections, defaults, problems


def assert_same_as_configparser(path: Path) -> dict[str, dict[str, str]]:
    expected_sections, expected_defaults = configparser_view(path)
    sections, defaults, problems = propguard_view(path)
    assert problems == []
    assert list(sections) == list(expected_sections)  # same order
    assert sections == expected_sections
    assert defaults == expected_defaults
    return sections


@pytest.mark.parametrize("name", GLANCE_FILES)
def test_glance_files_read_like_configparser(name):
    sections = assert_same_as_configparser(GLANCE_RULES_DIR / name)
    assert sections, "every Glance file has sections"
    for options in sections.values():
        assert set(options) == {"create", "read", "update", "delete"}


def test_glance_test_file_section_order():
    sections, _, _ = propguard_view(GLANCE_RULES_DIR / "property-protections.conf")
    assert list(sections) == GLANCE_CONFIG_SECTIONS[1:]


TRICKY = {
    "continuation_lines": (
        "[a]\ncreate = admin,\n   member\n\n    reader\nread = admin\n",
        {"a": {"create": "admin,\nmember\n\nreader", "read": "admin"}},
    ),
    "trailing_blank_lines_dropped": (
        "[a]\ncreate = admin\n\n\n[b]\nread = x\n",
        {"a": {"create": "admin"}, "b": {"read": "x"}},
    ),
    "full_line_comments_hash_and_semicolon": (
        "# top\n; top too\n[a]\n# c\n  ; indented comment\ncreate = admin\n;read = nope\n",
        {"a": {"create": "admin"}},
    ),
    "comment_inside_continuation_is_skipped": (
        "[a]\ncreate = admin\n# not part of the value\n  member\n",
        {"a": {"create": "admin\nmember"}},
    ),
    "inline_semicolon_is_not_a_comment": (
        "[a]\ncreate = admin ; member\nread = admin # x\n",
        {"a": {"create": "admin ; member", "read": "admin # x"}},
    ),
    "colon_delimiter": (
        "[a]\ncreate: admin\nread : member\nupdate:x\n",
        {"a": {"create": "admin", "read": "member", "update": "x"}},
    ),
    "first_delimiter_wins": (
        "[a]\ncreate = a:b=c\nread: x=y\n",
        {"a": {"create": "a:b=c", "read": "x=y"}},
    ),
    "upper_case_keys_lowered": (
        "[a]\nCREATE = Admin\nRead=Member\nuPdAtE = X\n",
        {"a": {"create": "Admin", "read": "Member", "update": "X"}},
    ),
    "empty_value": (
        "[a]\ncreate =\nread=\n",
        {"a": {"create": "", "read": ""}},
    ),
    "tabs_and_spaces": (
        "[a]\n\tcreate\t=\tadmin \t\nread   =   admin ,  member  \n",
        {"a": {"create": "admin", "read": "admin ,  member"}},
    ),
    "header_with_trailing_text": (
        "[x_foo] ; comment\ncreate = admin\n",
        {"x_foo": {"create": "admin"}},
    ),
    "header_with_brackets_inside": (
        "[^[0-9]]\ncreate = admin\n[a]b]\nread = x\n",
        {"^[0-9]": {"create": "admin"}, "a]b": {"read": "x"}},
    ),
    "indented_header_and_options": (
        "  [a]\n  create = admin\n  read = x\n",
        {"a": {"create": "admin", "read": "x"}},
    ),
    "indented_header_after_option_is_continuation": (
        "[a]\ncreate = admin\n  [b]\nread = x\n",
        {"a": {"create": "admin\n[b]", "read": "x"}},
    ),
    "crlf_line_endings": (
        "[a]\r\ncreate = admin\r\nread = x\r\n",
        {"a": {"create": "admin", "read": "x"}},
    ),
    "lower_case_default_is_a_normal_section": (
        "[default]\ncreate = x\n",
        {"default": {"create": "x"}},
    ),
    "form_feed_does_not_split_a_line": (
        # configparser reads lines like a text file: \x0c, \x1c, \x85, \u2028
        # do not end a line, so the "[hidden]" below is part of a comment.
        "[a]\n# comment\x0c[hidden]\ncreate = ad\x0cmin\nread = x\u2028delete = y\n",
        {"a": {"create": "ad\x0cmin", "read": "x\u2028delete = y"}},
    ),
    "percent_kept_raw": (
        "[a]\ncreate = ad%%min\n",
        {"a": {"create": "ad%%min"}},
    ),
}


@pytest.mark.parametrize("text,expected", list(TRICKY.values()), ids=list(TRICKY))
def test_tricky_inputs_read_like_configparser(tmp_path, text, expected):
    path = tmp_path / "rules.conf"
    path.write_bytes(text.encode("utf-8"))
    sections = assert_same_as_configparser(path)
    assert sections == expected


def test_default_section_is_returned_like_configparser_defaults(tmp_path):
    path = tmp_path / "rules.conf"
    path.write_text("[DEFAULT]\nread = member\n\n[a]\ncreate = admin\n", encoding="utf-8")
    assert_same_as_configparser(path)
    raw_sections, problems = read_ini(str(path), path.read_text())
    assert problems == []
    assert [s.name for s in raw_sections] == ["DEFAULT", "a"]
    # configparser would fill [a] read from DEFAULT; the reader does not merge.
    assert "read" not in raw_sections[1].options
    parser = configparser.ConfigParser()
    parser.read(path)
    assert parser.get("a", "read") == "member"


def test_split_lines_matches_text_mode_file_reading(tmp_path):
    text = "a\r\nb\rc\x0cd\x1ce\x85f\u2028g\u2029h\n\ni"
    path = tmp_path / "lines.txt"
    path.write_bytes(text.encode("utf-8"))
    with open(path, encoding="utf-8") as handle:
        expected = [line.rstrip("\n") for line in handle]
    assert split_lines(text) == expected
    assert split_lines(text) == ["a", "b", "c\x0cd\x1ce\x85f\u2028g\u2029h", "", "i"]
    assert split_lines("") == []
    assert split_lines("a\n") == ["a"]


# --- syntax errors: configparser raises on the first, the reader reports each ---

ERRORS = {
    "duplicate_section": (
        "[a]\ncreate = x\n[a]\nread = y\n",
        configparser.DuplicateSectionError,
        [("PG103", 3, 1)],
    ),
    "duplicate_option": (
        "[a]\ncreate = x\nCreate = y\n",
        configparser.DuplicateOptionError,
        [("PG113", 3, 1)],
    ),
    "text_before_first_section": (
        "create = x\n[a]\n",
        configparser.MissingSectionHeaderError,
        [("PG102", 1, 1)],
    ),
    "not_key_value": (
        "[a]\ncreate = x\n  \njust words\n",
        configparser.ParsingError,
        [("PG102", 4, 1)],
    ),
    "empty_option_name": (
        "[a]\n= admin\n",
        configparser.ParsingError,
        [("PG102", 2, 1)],
    ),
}


@pytest.mark.parametrize("text,exc,expected", list(ERRORS.values()), ids=list(ERRORS))
def test_syntax_errors_where_configparser_fails(tmp_path, text, exc, expected):
    path = tmp_path / "bad.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(exc):
        configparser.ConfigParser().read(path)
    _, problems = read_ini(str(path), text)
    assert [(p.code, p.position.line, p.position.column) for p in problems] == expected
    assert all(p.position.file == str(path) for p in problems)


def test_every_syntax_problem_is_reported_not_just_the_first():
    text = "junk\n[a]\ncreate = x\nbad line\n[a]\n[b]\nread = 1\nread = 2\n"
    _, problems = read_ini("f.conf", text)
    assert [(p.code, p.position.line) for p in problems] == [
        ("PG102", 1),
        ("PG102", 4),
        ("PG103", 5),
        ("PG113", 8),
    ]
    assert "first defined at line 2" in problems[2].message
    assert "first at line 7" in problems[3].message


def test_positions_of_sections_keys_and_values():
    text = "# c\n\n  [x_foo]\n  create   =  admin\nREAD: member\n"
    sections, problems = read_ini("r.conf", text)
    assert problems == []
    (section,) = sections
    assert section.position == Position("r.conf", 3, 3)
    create = section.options["create"]
    assert create.position == Position("r.conf", 4, 3)
    assert create.value_position == Position("r.conf", 4, 15)
    assert text.splitlines()[3][create.value_position.column - 1 :].startswith("admin")
    read = section.options["read"]
    assert read.position == Position("r.conf", 5, 1)
    assert read.value_position == Position("r.conf", 5, 7)


def test_line_numbers_stay_right_after_form_feed():
    """With ``str.splitlines`` the \\x0c would shift every later line number."""
    text = "[a]\n# page\x0cbreak\ncreate = x\n[a]\n"
    _, problems = read_ini("f.conf", text)
    assert [(p.code, p.position.line) for p in problems] == [("PG103", 4)]
