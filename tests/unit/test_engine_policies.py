"""The engine, policies format: Glance's ``TestPropertyRulesWithPolicies`` (reference §3.2),
the policies rows of §1.3/§1.4/§1.5, and propguard's documented differences.

Glance's test setup is reproduced with its own files: ``property-protections-policies.conf``,
``policy.yaml`` (``glance_creator``) and the ``glance`` policy namespace (``default`` = ``''``,
``context_is_admin`` = ``role:admin``), via ``policy_namespaces=['glance']``.
"""

from __future__ import annotations

import copy

import pytest
from glance_tables import SHARED_ROWS

from propguard.identity import ANONYMOUS, credentials_from_environ
from propguard.rules import (
    OPERATIONS,
    RulesError,
    compile_rules,
    load_rules,
    parse_rules_text,
)


def section(name, **ops):
    values = {op: ops.get(op, "!") for op in OPERATIONS}
    return f"[{name}]\n" + "".join(f"{op} = {v}\n" for op, v in values.items())


def compile_text(text, policy_file=None, namespaces=("glance",), **options):
    doc = parse_rules_text("p.conf", text, "policies")
    return compile_rules(doc, policy_file=policy_file, policy_namespaces=namespaces, **options)


@pytest.fixture
def policy_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "policy.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


GLANCE_POLICIES_TABLE = [
    ("create_permitted_specific_policy", "spl_creator_policy", "create", ["spl_role"], True),
    ("create_unpermitted_policy", "spl_creator_policy", "create", ["fake-role"], False),
    ("read_permitted_specific_policy", "spl_creator_policy", "read", ["spl_role"], True),
    ("read_unpermitted_policy", "spl_creator_policy", "read", ["fake-role"], False),
    ("update_permitted_specific_policy", "spl_creator_policy", "update", ["admin"], True),
    ("update_unpermitted_policy", "spl_creator_policy", "update", ["fake-role"], False),
    ("delete_permitted_specific_policy", "spl_creator_policy", "delete", ["admin"], True),
    ("delete_unpermitted_policy", "spl_creator_policy", "delete", ["fake-role"], False),
    *SHARED_ROWS,
]


@pytest.mark.parametrize(
    "prop,op,roles,expected",
    [row[1:] for row in GLANCE_POLICIES_TABLE],
    ids=[row[0] for row in GLANCE_POLICIES_TABLE],
)
def test_glance_policies_table(policies_engine, creds, prop, op, roles, expected):
    c = creds(*roles)
    assert policies_engine.allowed(prop, op, c) is expected
    assert policies_engine.decide(prop, op, c).allowed is expected


def test_policies_engine_sections(policies_engine):
    assert [s.pattern for s in policies_engine.sections] == [
        "^os_glance",
        "spl_creator_policy",
        "spl_default_policy",
        "^x_all_permitted.*",
        "^x_none_permitted.*",
        "x_none_read",
        "x_none_update",
        "x_none_delete",
        "x_foo_matcher",
        "x_foo_*",
        ".*",
    ]
    assert policies_engine.rule_format == "policies"


def test_context_is_admin_and_catch_all(policies_engine, creds):
    """``[.*]`` is ``context_is_admin`` (= ``role:admin``, case-insensitive in oslo.policy)."""
    for op in OPERATIONS:
        assert policies_engine.allowed("anything", op, creds("admin"))
        assert policies_engine.allowed("anything", op, creds("ADMIN"))
        assert not policies_engine.allowed("anything", op, creds("member"))
        assert not policies_engine.allowed("anything", op, ANONYMOUS)
    assert policies_engine.allowed("x_foo_bar", "delete", ANONYMOUS)  # [x_foo_*] = @


def test_deliberate_default_still_allows_everyone(policies_engine, creds):
    """``[spl_default_policy] read = default``: the ``default`` rule (Glance's ``''``), named
    on purpose, is a defined rule and allows everyone, as in Glance."""
    for c in (ANONYMOUS, creds("fake-role"), creds("")):
        assert policies_engine.allowed("spl_default_policy", "read", c)
        assert not policies_engine.allowed("spl_default_policy", "create", c)
    assert policies_engine.allowed("spl_default_policy", "create", creds("admin"))
    d = policies_engine.decide("spl_default_policy", "read", ANONYMOUS)
    assert d.reason == "policy 'default' (@) passed"
    assert (d.section_name, d.line) == ("spl_default_policy", 7)


def test_decide_reason_names_the_policy(policies_engine, creds):
    d = policies_engine.decide("spl_creator_policy", "create", creds("fake-role"))
    assert not d.allowed
    assert (d.section_name, d.line) == ("spl_creator_policy", 1)
    assert d.reason == "policy 'glance_creator' ((role:admin or role:spl_role)) failed"


def test_undefined_policy_name_is_pg111():
    """§1.5 policies ``delete = nosuchrule``: Glance allows roles ``[]``, ``['member']``,
    ``['admin']`` (fallback to ``default``). Difference: load error PG111."""
    text = section("a", create="context_is_admin", read="default", delete="nosuchrule")
    with pytest.raises(RulesError) as info:
        compile_text(text)
    assert [(p.code, p.position.line, p.position.column) for p in info.value.problems] == [
        ("PG111", 5, 10)
    ]
    assert "'nosuchrule' is not defined" in str(info.value)
    assert str(info.value).startswith("p.conf:5:10: PG111 ")


def test_inject_os_glance_policies_variant(creds):
    """Glance mixin ``test_inject_os_glance`` in the policies subclass: ``read = member`` is
    an undefined policy name that Glance lets fall back to ``default`` (True).
    Difference: PG111. With a defined name the rest of the test holds."""
    x_foo = section("x_foo", create="fake-role", read="member", update="!", delete="!")
    with pytest.raises(RulesError) as info:
        compile_text(x_foo + section("os_glance_store"))
    assert [(p.code, p.position.line) for p in info.value.problems] == [
        ("PG111", 2),
        ("PG111", 3),
    ]
    assert "policy 'member' is not defined" in info.value.problems[1].message
    engine = compile_text(
        section("x_foo", create="!", read="default", update="!", delete="!")
        + section("os_glance_store")
    )
    assert engine.allowed("x_foo", "read", creds("member"))
    assert [s.pattern for s in engine.sections] == ["^os_glance", "x_foo"]
    for op in OPERATIONS:
        assert engine.allowed("os_glance.*", op, creds(""))


def test_undefined_rule_reference_is_pg111(policy_file):
    """An undefined ``rule:`` reference would fall back to ``default`` in oslo.policy
    (Glance: allow); propguard refuses it at load time."""
    path = policy_file('"my_rule": "role:admin or rule:typo"\n"ok": "rule:context_is_admin"\n')
    with pytest.raises(RulesError) as info:
        compile_text(section("a", create="my_rule", read="ok"), policy_file=path)
    (problem,) = info.value.problems
    assert problem.code == "PG111"
    assert "uses 'rule:typo' (in 'my_rule')" in problem.message
    assert problem.position.line == 2


def test_names_need_their_namespace(creds):
    """Glance's built-in names (``context_is_admin``, ``default``) exist only with the
    ``glance`` namespace; without it they are undefined (PG111), never allow-all."""
    with pytest.raises(RulesError) as info:
        compile_text(section("a", create="context_is_admin", read="default"), namespaces=())
    assert [p.code for p in info.value.problems] == ["PG111", "PG111"]


def test_unknown_namespace_is_pg117():
    with pytest.raises(RulesError, match="PG117 policy namespace 'no-such-service'"):
        compile_text(section("a", create="@"), namespaces=("no-such-service",))


@pytest.mark.parametrize(
    "text,line",
    [('"a": "role:x"\n  "b": [unclosed\n', 2), ("- just\n- a list\n", 1)],
)
def test_broken_policy_file_is_pg118(policy_file, text, line):
    path = policy_file(text)
    with pytest.raises(RulesError) as info:
        compile_text(section("a", create="@"), policy_file=path)
    (problem,) = info.value.problems
    assert problem.code == "PG118"
    assert (problem.position.file, problem.position.line) == (path, line)


def test_missing_policy_file_is_pg118(tmp_path):
    with pytest.raises(RulesError, match="PG118 cannot read policy file"):
        compile_text(section("a", create="@"), policy_file=str(tmp_path / "nope.yaml"))


def test_multiple_policies_is_pg110_at_load():
    """§1.5 policies ``create = p1,p2`` and Glance ``test_property_protection_with_multiple_policies``."""
    text = (
        "[^x_.*]\ncreate = fake-policy, another_pol\nread = fake-policy\n"
        "update = fake-policy\ndelete = fake-policy\n"
    )
    with pytest.raises(RulesError) as info:
        compile_text(text)
    assert [p.code for p in info.value.problems] == ["PG110"]
    with pytest.raises(RulesError, match="PG110"):
        compile_text(section("a", create="p1,p2"))


def test_malformed_regex_is_load_error_policies():
    """Glance ``test_property_protection_with_malformed_rule`` (policies)."""
    with pytest.raises(RulesError, match=r"p\.conf:1:2: PG104"):
        compile_text("[^[0-9)]\n" + "".join(f"{op} = fake-policy\n" for op in OPERATIONS))


def test_policy_file_overrides_a_registered_default(policy_file, creds):
    path = policy_file('"context_is_admin": "role:superuser"\n')
    engine = compile_text(section(".*", read="context_is_admin"), policy_file=path)
    assert engine.allowed("p", "read", creds("superuser"))
    assert not engine.allowed("p", "read", creds("admin"))


def test_glance_creator_with_service_role_strict_vs_union(data_dir, creds):
    """§1.5 policies ``create = glance_creator``: roles ``['spl_role']`` => True (both);
    roles ``['member']`` + service roles ``['spl_role']`` => Glance True (union).
    Difference: strict mode (default) False; ``union`` mode True."""
    strict = load_rules(
        str(data_dir / "property-protections-policies.conf"),
        "policies",
        policy_file=str(data_dir / "policy.yaml"),
        policy_namespaces=["glance"],
    )
    union = load_rules(
        str(data_dir / "property-protections-policies.conf"),
        "policies",
        policy_file=str(data_dir / "policy.yaml"),
        policy_namespaces=["glance"],
        mode="union",
    )
    via_service = creds("member", service=["spl_role"])
    assert strict.allowed("spl_creator_policy", "create", creds("spl_role"))
    assert union.allowed("spl_creator_policy", "create", creds("spl_role"))
    assert not strict.allowed("spl_creator_policy", "create", via_service)
    assert union.allowed("spl_creator_policy", "create", via_service)


def test_union_mode_puts_service_roles_in_roles(creds):
    c = creds("member", service=["admin", "service"])
    assert c.policy_values()["roles"] == ["member"]
    assert c.policy_values(union=True)["roles"] == ["admin", "member", "service"]
    assert c.policy_values(union=True)["service_roles"] == ["admin", "service"]
    text = section("a", create="context_is_admin")
    assert not compile_text(text).allowed("a", "create", c)
    assert compile_text(text, mode="union").allowed("a", "create", c)


SERVICE_POLICY = (
    '"svc_only": "service_roles:service"\n"nova_member": "role:member and service_roles:nova"\n'
)


def service_environ(status="Confirmed", service_roles="service,nova", trusted=True):
    environ = {
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_ROLES": "member",
        "HTTP_X_SERVICE_IDENTITY_STATUS": status,
        "HTTP_X_SERVICE_ROLES": service_roles,
    }
    if trusted:
        environ["keystone.token_auth"] = object()
    return environ


@pytest.mark.parametrize(
    "environ,expected",
    [
        (service_environ(), True),
        (service_environ(service_roles="Service,Nova"), True),
        (service_environ(status="Invalid"), False),
        (service_environ(service_roles="nova"), False),  # no configured service role
        (service_environ(trusted=False), False),  # spoofed headers, no auth layer
    ],
    ids=["confirmed", "confirmed-mixed-case", "invalid", "no-service-role", "spoofed"],
)
def test_service_roles_check_sees_only_confirmed_service_roles(policy_file, environ, expected):
    """``service_roles:`` in a check string sees only service roles of a confirmed service
    token that carries a configured service role (in either mode)."""
    path = policy_file(SERVICE_POLICY)
    text = section("a", create="svc_only", update="nova_member")
    for mode in ("strict", "union"):
        engine = compile_text(text, policy_file=path, mode=mode)
        c = credentials_from_environ(environ)
        assert engine.allowed("a", "create", c) is expected
        assert engine.allowed("a", "update", c) is expected


def test_empty_target_owner_checks_never_pass(policy_file, creds):
    """§1.4: Glance enforces with an empty target, so ``project_id:%(project_id)s`` always
    fails; propguard evaluates the same way."""
    path = policy_file('"owner": "project_id:%(project_id)s"\n"in_p1": "project_id:p1"\n')
    engine = compile_text(section("a", create="owner", read="in_p1"), policy_file=path)
    c = creds("member", project_id="p1")
    assert not engine.allowed("a", "create", c)
    assert engine.allowed("a", "read", c)


def test_no_default_fallback_and_no_registration(policies_engine):
    """Glance registers ``"<section>:<op>": "rule:<value>"`` in its enforcer; propguard
    evaluates the named rule directly and turns the default-rule fallback off."""
    rules = policies_engine.policies.enforcer.rules
    assert rules.default_rule is None
    assert "spl_creator_policy:create" not in rules
    assert policies_engine.policies.evaluate("nosuchrule", {"roles": ["admin"]}) is False


def test_policy_checks_do_not_mutate_credentials(policies_engine, creds):
    c = creds("member", service=["spl_role"])
    before = copy.deepcopy(c)
    for _ in range(3):
        assert not policies_engine.allowed("spl_creator_policy", "create", c)
        assert not policies_engine.decide("spl_creator_policy", "read", c).allowed
    assert c == before and c.roles == frozenset({"member"})


# -- policy.d, as glance-api reads [oslo_policy] policy_dirs ---------------------------


def test_policy_d_defines_and_overrides_names(tmp_path, policy_file, creds):
    """Files in ``policy.d`` next to the policy file count, in name order, over the file."""
    path = policy_file('"pg_read": "role:admin"\n')
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.d" / "10-read.yaml").write_text('"pg_read": "role:reader"\n')
    (tmp_path / "policy.d" / "20-read.yaml").write_text('"pg_read": "role:member"\n')
    (tmp_path / "policy.d" / "30-only-here.yaml").write_text('"pg_billing": "role:billing"\n')
    (tmp_path / "policy.d" / ".hidden.yaml").write_text('"pg_read": "role:nobody"\n')
    engine = compile_text(
        section("^x_", read="pg_read") + section(".*", read="pg_billing"), policy_file=path
    )
    assert engine.allowed("x_a", "read", creds("member"))
    assert not engine.allowed("x_a", "read", creds("admin"))
    assert not engine.allowed("x_a", "read", creds("reader"))
    assert engine.allowed("other", "read", creds("billing"))


def test_policy_dirs_off_ignores_policy_d(tmp_path, policy_file):
    path = policy_file('"pg_read": "role:admin"\n')
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.d" / "extra.yaml").write_text('"pg_billing": "role:billing"\n')
    with pytest.raises(RulesError, match="PG111"):
        compile_text(section(".*", read="pg_billing"), policy_file=path, policy_dirs=())


def test_named_policy_dir_relative_to_the_policy_file(tmp_path, policy_file, creds):
    path = policy_file('"pg_read": "role:admin"\n')
    (tmp_path / "glance-policy.d").mkdir()
    (tmp_path / "glance-policy.d" / "a.yaml").write_text('"pg_read": "role:member"\n')
    engine = compile_text(
        section(".*", read="pg_read"), policy_file=path, policy_dirs=("glance-policy.d",)
    )
    assert engine.allowed("p", "read", creds("member"))


def test_missing_policy_dir_is_skipped_like_oslo_policy(policy_file, creds):
    path = policy_file('"pg_read": "role:admin"\n')
    engine = compile_text(
        section(".*", read="pg_read"), policy_file=path, policy_dirs=("policy.d", "absent.d")
    )
    assert engine.allowed("p", "read", creds("admin"))


def test_broken_file_in_policy_d_names_that_file_and_line(tmp_path, policy_file):
    path = policy_file('"pg_read": "role:admin"\n')
    (tmp_path / "policy.d").mkdir()
    broken = tmp_path / "policy.d" / "50-broken.yaml"
    broken.write_text('"a": "role:x"\n  "b": [unclosed\n')
    with pytest.raises(RulesError) as info:
        compile_text(section(".*", read="pg_read"), policy_file=path)
    (problem,) = info.value.problems
    assert problem.code == "PG118"
    assert (problem.position.file, problem.position.line) == (str(broken), 2)
