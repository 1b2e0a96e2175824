"""Parsing rules files: Glance's load-time semantics (reference §1.3, §1.5, §3.2).

Every Glance load-time case is here, either with Glance's outcome or with
propguard's documented stricter outcome (named in the docstring).
"""

from __future__ import annotations

import pytest

from propguard.rules import (
    OPERATIONS,
    Position,
    RuleFormat,
    RulesError,
    Severity,
    compile_rules,
    load_rules,
    parse_rules_file,
    parse_rules_text,
)
from propguard.rules.model import Conjunction

FOUR = {"create": "admin", "read": "admin", "update": "admin", "delete": "admin"}


def problems(doc, severity=None):
    return [
        (p.code, p.position.line, p.position.column)
        for p in doc.problems
        if severity is None or p.severity is severity
    ]


def codes(doc):
    return sorted({p.code for p in doc.problems})


def parse(text, fmt="roles", path="r.conf"):
    return parse_rules_text(path, text, fmt)


# --- Glance's own files load cleanly ---------------------------------------


def test_glance_roles_test_file_parses(data_dir):
    doc = parse_rules_file(str(data_dir / "property-protections.conf"), "roles")
    assert doc.problems == []
    assert len(doc.sections) == 17
    assert [s.index for s in doc.sections] == list(range(17))
    first = doc.sections[0]
    assert first.pattern == "^x_owner_.*"
    assert first.position == Position(str(data_dir / "property-protections.conf"), 1, 1)
    assert first.values["create"].entries == (
        Conjunction(frozenset({"admin"}), frozenset()),
        Conjunction(frozenset({"member"}), frozenset()),
    )
    # 'Member' in [x_case_insensitive] is lower-cased when parsed.
    ci = next(s for s in doc.sections if s.pattern == "x_case_insensitive")
    assert {c for e in ci.values["read"].entries for c in e.user_roles} == {"admin", "member"}
    allp = next(s for s in doc.sections if s.pattern == "^x_all_permitted.*")
    assert all(allp.values[op].everyone for op in OPERATIONS)
    nonep = next(s for s in doc.sections if s.pattern == "^x_none_permitted.*")
    assert all(nonep.values[op].nobody for op in OPERATIONS)


def test_glance_policies_test_file_parses(data_dir):
    doc = parse_rules_file(str(data_dir / "property-protections-policies.conf"), "policies")
    assert doc.problems == []
    assert [s.pattern for s in doc.sections][:2] == ["spl_creator_policy", "spl_default_policy"]
    spl = doc.sections[0]
    assert [spl.values[op].policy for op in OPERATIONS] == [
        "glance_creator",
        "glance_creator",
        "context_is_admin",
        "context_is_admin",
    ]
    assert doc.sections[2].values["read"].everyone
    assert doc.sections[3].values["read"].nobody


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("property-protections-roles.conf.sample", "roles"),
        ("property-protections-policies.conf.sample", "policies"),
    ],
)
def test_glance_sample_files_parse(data_dir, name, fmt):
    doc = parse_rules_file(str(data_dir / name), fmt)
    assert doc.problems == []
    assert [s.pattern for s in doc.sections] == ["^x_.*", ".*"]
    assert doc.sections[0].position.line == (22 if fmt == "roles" else 29)


# --- §1.3 / §3.2 load errors -----------------------------------------------


def test_file_missing_is_pg101(tmp_path):
    """Glance: ``test_property_protection_file_doesnt_exist`` raises
    InvalidPropertyProtectionConfiguration (logged as "Couldn't find ...")."""
    path = str(tmp_path / "fake-file.conf")
    doc = parse_rules_file(path, "roles")
    assert problems(doc) == [("PG101", 1, 1)]
    with pytest.raises(RulesError) as info:
        load_rules(path, "roles")
    assert str(info.value).startswith(f"{path}:1:1: PG101 ")
    assert "No such file" in str(info.value)


def test_unreadable_encoding_is_pg101(tmp_path):
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"[a]\ncreate = r\xf4le\n")
    assert codes(parse_rules_file(str(path), "roles")) == ["PG101"]


def test_duplicate_section_is_pg103():
    """Glance: ``[a]`` twice is a load error (configparser strict mode)."""
    text = "[a]\ncreate = x\nread = x\nupdate = x\ndelete = x\n\n[a]\ncreate = y\n"
    doc = parse(text)
    assert problems(doc) == [("PG103", 7, 1)]
    assert [s.pattern for s in doc.sections] == ["a"]


@pytest.mark.parametrize("fmt,value", [("roles", "fake-role"), ("policies", "fake-policy")])
def test_malformed_regex_is_pg104(fmt, value):
    """Glance ``test_property_protection_with_malformed_rule`` (both formats): ``[^[0-9)]``."""
    ops = "".join(f"{op} = {value}\n" for op in OPERATIONS)
    doc = parse("# header\n[^[0-9)]\n" + ops, fmt)
    assert problems(doc) == [("PG104", 2, 2)]  # column of the regex, after '['
    assert "not a valid regular expression" in doc.problems[0].message
    assert doc.sections == []


def test_missing_operation_is_pg105():
    """Glance ``test_property_protection_with_missing_operation``: no ``read``."""
    doc = parse("[^[0-9]]\ncreate = fake-role\nupdate = fake-role\ndelete = fake-role\n")
    assert problems(doc) == [("PG105", 1, 1)]
    assert "'read'" in doc.problems[0].message
    assert doc.sections == []


def test_misspelt_operation_is_pg106_and_pg105():
    """Glance ``test_property_protection_with_misspelt_operation``: ``rade`` instead of read."""
    text = "[^[0-9]]\ncreate = r\nrade = r\nupdate = r\ndelete = r\n"
    doc = parse(text)
    assert problems(doc) == [("PG106", 3, 1), ("PG105", 1, 1)]
    assert doc.problems[0].hint == "did you mean 'read'?"


def test_extra_unknown_key_is_pg106():
    """Difference: Glance ignores ``rade = x`` next to the four valid ops (loads);
    propguard refuses the unknown key (PG106)."""
    text = "[a]\ncreate = admin\nread = admin\nrade = x\nupdate = admin\ndelete = admin\n"
    doc = parse(text)
    assert problems(doc) == [("PG106", 4, 1)]
    assert doc.sections == []
    with pytest.raises(RulesError, match=r"r\.conf:4:1: PG106 unknown operation 'rade'"):
        compile_rules(doc)


def test_unknown_key_without_close_match_lists_operations():
    doc = parse("[a]\ncreate = a\nread = a\nupdate = a\ndelete = a\nowner = x\n")
    assert problems(doc) == [("PG106", 6, 1)]
    assert doc.problems[0].hint == "operations are create, read, update, delete"


def test_upper_case_operation_keys_load():
    """Glance: ``CREATE = admin, Read = admin, ...`` loads (option names are lower-cased)."""
    doc = parse("[a]\nCREATE = admin\nRead = admin\nUPDATE = admin\nDelete = admin\n")
    assert doc.problems == []
    assert set(doc.sections[0].values) == set(OPERATIONS)


def test_default_section_is_pg112():
    """Difference: Glance's ``[DEFAULT] read = member`` silently fills in the missing
    ``read`` of ``[a]`` (loads; ``a``/read/member => True). propguard: PG112, and ``[a]``
    still lacks ``read`` (PG105)."""
    text = "[DEFAULT]\nread = member\n\n[a]\ncreate = admin\nupdate = admin\ndelete = admin\n"
    doc = parse(text)
    assert problems(doc) == [("PG112", 2, 1), ("PG105", 4, 1)]
    assert "[DEFAULT] sets 'read'" in doc.problems[0].message


def test_empty_default_section_is_fine():
    doc = parse("[DEFAULT]\n\n[a]\n" + "".join(f"{op} = admin\n" for op in OPERATIONS))
    assert doc.problems == []
    assert [s.pattern for s in doc.sections] == ["a"]


def test_at_and_bang_together_is_pg107():
    """Glance ``test_property_protection_with_mutually_exclusive_rule``: ``create = @,!``."""
    doc = parse("[.*]\ncreate = @,!\nread = fake-role\nupdate = fake-role\ndelete = fake-role\n")
    assert problems(doc) == [("PG107", 2, 10)]
    doc = parse("[a]\ncreate = @, !\nread = a\nupdate = a\ndelete = a\n")
    assert codes(doc) == ["PG107"]


@pytest.mark.parametrize("value", ["@,admin", "!,admin", "admin, @", "member,!"])
def test_special_mixed_with_roles_is_pg114(value):
    """Difference: Glance accepts ``@,admin`` (means everyone) and ``!,admin`` (nobody);
    propguard refuses the ambiguous mix (PG114)."""
    doc = parse(f"[a]\ncreate = {value}\nread = a\nupdate = a\ndelete = a\n")
    assert problems(doc) == [("PG114", 2, 10)]
    assert doc.sections == []


def test_trailing_comma_is_pg108():
    """Difference: Glance keeps an empty role ``''`` for ``create = admin,`` (a caller
    with role ``''`` is allowed); propguard: PG108 at the empty entry."""
    doc = parse("[a]\ncreate = admin,\nread = a,,b\nupdate = a\ndelete = , a\n")
    assert problems(doc) == [("PG108", 2, 16), ("PG108", 3, 10), ("PG108", 5, 10)]
    assert doc.sections == []


@pytest.mark.parametrize("fmt", ["roles", "policies"])
@pytest.mark.parametrize(
    "value,col", [("ad%min", 12), ("ad%%min", 12), ("%(foo)s", 10), ("admin,%", 16)]
)
def test_percent_is_pg109(fmt, value, col):
    """Difference: Glance's ``create = ad%min`` raises an uncaught InterpolationSyntaxError
    (HTTP 500 at request time); propguard: a load error PG109 at the ``%``."""
    if fmt == "policies" and "," in value:
        value = value.replace(",", "")
        col -= 1
    doc = parse(f"[a]\ncreate = {value}\nread = a\nupdate = a\ndelete = a\n", fmt)
    assert problems(doc) == [("PG109", 2, col)]


def test_multiple_policies_is_pg110():
    """Glance ``test_property_protection_with_multiple_policies``: ``fake-policy, another_pol``."""
    text = (
        "[^x_.*]\ncreate = fake-policy, another_pol\nread = fake-policy\n"
        "update = fake-policy\ndelete = fake-policy\n"
    )
    doc = parse(text, "policies")
    assert problems(doc) == [("PG110", 2, 10)]
    # The same value is a role list in the roles format.
    assert parse(text, "roles").problems == []


@pytest.mark.parametrize("fmt", ["roles", "policies"])
def test_empty_value_is_denied_with_warning_pg201(fmt):
    """Glance: ``create =`` loads with a warning and denies everyone (both formats)."""
    doc = parse("[a]\ncreate =\nread = @\nupdate = !\ndelete = !\n", fmt)
    assert problems(doc) == [("PG201", 2, 1)]
    assert doc.problems[0].severity is Severity.WARNING
    assert doc.errors == []
    create = doc.sections[0].values["create"]
    assert create.nobody and create.raw == ""
    compile_rules(doc, policy_namespaces=["glance"])  # a warning does not stop loading


def test_os_glance_user_sections_are_dropped_pg116():
    """Glance ``test_inject_os_glance``: ``[os_glance_store]`` is deleted; propguard drops it
    too, with warning PG116 (and also a user ``[os_glance.*]``)."""
    text = (
        "[x_foo]\ncreate = fake-role\nread = member\nupdate = fake-role\ndelete = fake-role\n"
        "[os_glance_store]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"
        "[os_glance.*]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"
    )
    doc = parse(text)
    assert problems(doc) == [("PG116", 6, 1), ("PG116", 11, 1)]
    assert all(p.severity is Severity.WARNING for p in doc.problems)
    assert [s.pattern for s in doc.sections] == ["x_foo"]


def test_multiline_value_is_pg115():
    doc = parse("[a]\ncreate = admin,\n  member\nread = a\nupdate = a\ndelete = a\n")
    assert problems(doc) == [("PG115", 2, 10)]


@pytest.mark.parametrize("entry", ["service:", "a b", "member+@", "member+", "+x", "service:!"])
def test_malformed_role_entry_is_pg115(entry):
    doc = parse(f"[a]\ncreate = admin, {entry}\nread = a\nupdate = a\ndelete = a\n")
    assert problems(doc) == [("PG115", 2, 17)]


def test_whitespace_around_roles_is_stripped():
    """Glance ``test_property_protection_with_whitespace``."""
    text = (
        "[^test_prop.*]\ncreate = member ,fake-role\nread = fake-role, member\n"
        "update = fake-role,  member\ndelete = fake-role,   member\n"
    )
    doc = parse(text)
    assert doc.problems == []
    for op in OPERATIONS:
        users = {r for e in doc.sections[0].values[op].entries for r in e.user_roles}
        assert users == {"member", "fake-role"}


def test_conjunctions_and_service_entries():
    doc = parse(
        "[a]\ncreate = member+service:nova, Service:Cinder, ADMIN\nread = service: nova\n"
        "update = a + b\ndelete = @\n"
    )
    assert doc.problems == []
    values = doc.sections[0].values
    assert values["create"].entries == (
        Conjunction(frozenset({"member"}), frozenset({"nova"})),
        Conjunction(frozenset(), frozenset({"cinder"})),
        Conjunction(frozenset({"admin"}), frozenset()),
    )
    assert str(values["create"].entries[0]) == "member+service:nova"
    assert values["read"].entries == (Conjunction(frozenset(), frozenset({"nova"})),)
    assert values["update"].entries == (Conjunction(frozenset({"a", "b"}), frozenset()),)
    assert values["delete"].everyone


def test_policies_values():
    doc = parse(
        "[a]\ncreate = @\nread = !\nupdate = glance_creator\ndelete = default\n", "policies"
    )
    assert doc.problems == []
    v = doc.sections[0].values
    assert v["create"].everyone and v["read"].nobody
    assert (v["update"].policy, v["delete"].policy) == ("glance_creator", "default")


def test_empty_file_has_no_sections():
    """Glance: an empty file loads (only the injected ``[os_glance.*]``)."""
    doc = parse("")
    assert doc.sections == [] and doc.problems == []
    doc = parse("# only comments\n; here\n")
    assert doc.sections == [] and doc.problems == []


def test_rule_format_must_be_roles_or_policies():
    """Glance: ``property_protection_rule_format`` outside roles/policies is rejected."""
    with pytest.raises(ValueError):
        parse("[a]\n", "xml")
    assert RuleFormat("ROLES".lower()) is RuleFormat.ROLES


def test_sections_keep_file_order_and_positions():
    text = "[b]\n" + "".join(f"{op} = x\n" for op in OPERATIONS)
    text += "\n[a]\n" + "".join(f"{op} = y\n" for op in OPERATIONS)
    doc = parse(text)
    assert [(s.pattern, s.index, s.position.line) for s in doc.sections] == [
        ("b", 0, 1),
        ("a", 1, 7),
    ]
    assert doc.sections[1].values["read"].position == Position("r.conf", 9, 1)
    assert doc.sections[1].values["read"].value_position == Position("r.conf", 9, 8)
    assert doc.lines[6] == "[a]"


# --- RulesError names file and line ------------------------------------------


def test_rules_error_names_file_line_and_problem(write_rules):
    path = write_rules(
        "[ok]\ncreate = a\nread = a\nupdate = a\ndelete = a\n\n"
        "[bad]\ncreate = admin,\nread = a\nupdate = a\ndelete = a%\n"
    )
    with pytest.raises(RulesError) as info:
        load_rules(path, "roles")
    err = info.value
    assert [(p.code, p.position.line, p.position.column) for p in err.problems] == [
        ("PG108", 8, 16),
        ("PG109", 11, 11),
    ]
    assert str(err) == (
        f"{path}:8:16: PG108 empty role entry in 'create' ('admin,') (and 1 more problem(s))"
    )
    assert str(err.problems[1]).startswith(f"{path}:11:11: PG109 error ")


def test_rules_error_lists_only_errors_not_warnings(write_rules):
    path = write_rules("[a]\ncreate =\nread = a\nupdate = a\ndelete = a\n[a(]\n")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert {p.code for p in info.value.problems} == {"PG104", "PG105"}
    assert str(info.value).startswith(f"{path}:6:")
