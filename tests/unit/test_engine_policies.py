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


# -- service_roles: (and roles:) compare case-insensitively, like role: ------------------

CASE_POLICY = (
    '"svc_title": "service_roles:Service"\n'
    '"svc_upper": "service_roles:NOVA and role:Member"\n'
    '"svc_nested": "role:admin or (not role:reader and service_roles:Service)"\n'
    '"roles_title": "roles:Member"\n'
    '"svc_from_target": "service_roles:%(service)s"\n'
)


@pytest.mark.parametrize("mode", ["strict", "union"])
def test_service_roles_check_is_case_insensitive(policy_file, creds, mode):
    """Keystone role names are case-insensitive and propguard lower-cases them; oslo.policy's
    GenericCheck compares exactly, so ``service_roles:Service`` never matched. It now
    compares as ``role:`` does (oslo.policy's RoleCheck)."""
    path = policy_file(CASE_POLICY)
    text = section(
        "a", create="svc_title", read="svc_upper", update="svc_nested", delete="roles_title"
    )
    engine = compile_text(text, policy_file=path, mode=mode)
    relayed = creds("member", service=["service", "nova"])
    assert engine.allowed("a", "create", relayed)
    assert engine.allowed("a", "read", relayed)
    assert engine.allowed("a", "update", relayed)
    assert engine.allowed("a", "delete", relayed)
    assert "passed" in engine.decide("a", "create", relayed).reason
    # Still only the service token's roles, never the user's own (in either mode).
    assert not engine.allowed("a", "create", creds("member", "service", "nova"))
    assert not engine.allowed("a", "read", creds("member"))
    assert not engine.allowed("a", "update", creds("reader", service=["service"]))
    assert not engine.allowed("a", "delete", creds("reader"))


def test_service_roles_check_from_mixed_case_headers(policy_file):
    """End to end from auth_token headers in any spelling to a check in any spelling."""
    path = policy_file(CASE_POLICY)
    engine = compile_text(section("a", create="svc_title"), policy_file=path)
    for spelling in ("service", "Service", "SERVICE"):
        c = credentials_from_environ(service_environ(service_roles=f"{spelling},nova"))
        assert engine.allowed("a", "create", c), spelling
    assert not engine.allowed("a", "create", credentials_from_environ(service_environ("Invalid")))


def test_service_roles_target_substitution_still_fails_on_the_empty_target(policy_file, creds):
    path = policy_file(CASE_POLICY)
    engine = compile_text(section("a", create="svc_from_target"), policy_file=path)
    assert not engine.allowed("a", "create", creds("admin", service=["service"]))


def test_registered_default_with_service_roles_is_case_insensitive_and_left_intact(creds):
    """``propguard:service_relay`` (``service_roles:service``) comes from a registered default
    whose parsed check is shared with any other Enforcer in the process (Glance's): propguard
    uses its own copy; the shared object and oslo.policy's global registry stay as they are."""
    from oslo_policy import _checks, _parser

    from propguard import policy_defaults as policies
    from propguard.rules.policy_set import RoleListCheck

    shared = {rule.name: rule.check for rule in policies.list_rules()}
    engine = compile_text(
        section("a", create="propguard:service_relay", read="propguard:reader_via_service"),
        namespaces=("propguard",),
    )
    assert engine.allowed("a", "create", creds(service=["Service"]))
    assert engine.allowed("a", "read", creds("Reader", service=["SERVICE"]))
    assert not engine.allowed("a", "read", creds("reader"))
    own = engine.policies.check_for("propguard:service_relay")
    assert type(own) is RoleListCheck and str(own) == "service_roles:service"
    # The registered default's own parsed check is untouched...
    assert type(shared["propguard:service_relay"]) is _checks.GenericCheck
    assert {rule.name: rule.check for rule in policies.list_rules()} == shared
    # ...and so is oslo.policy's process-wide parsing: Glance's Enforcer still compares exactly.
    assert "service_roles" not in _checks.registered_checks
    glance_check = _parser.parse_rule("service_roles:Service")
    assert type(glance_check) is _checks.GenericCheck
    assert not glance_check({}, {"service_roles": ["service"]}, None)


def test_case_insensitive_rewrite_is_copy_on_write():
    from oslo_policy import _checks, _parser

    from propguard.rules.policy_set import RoleListCheck, case_insensitive_role_checks

    tree = _parser.parse_rule("role:admin or (not service_roles:Nova and roles:Member)")
    before = str(tree)
    rewritten = case_insensitive_role_checks(tree)
    assert rewritten is not tree and str(rewritten) == before
    assert str(tree) == before
    nodes = [tree]
    while nodes:  # the original tree has no RoleListCheck anywhere
        node = nodes.pop()
        assert not isinstance(node, RoleListCheck)
        nodes.extend(getattr(node, "rules", ()))
        if isinstance(getattr(node, "rule", None), _checks.BaseCheck):
            nodes.append(node.rule)
    creds = {"roles": ["member"], "service_roles": ["nova"]}
    assert not rewritten({}, creds, None)  # not service_roles:Nova -> False
    assert rewritten({}, {"roles": ["member"], "service_roles": []}, None)
    assert not tree({}, {"roles": ["member"], "service_roles": []}, None)  # exact: Member
    unchanged = _parser.parse_rule("role:admin or project_id:p1")
    assert case_insensitive_role_checks(unchanged) is unchanged


def test_lint_still_sees_service_roles_atoms(tmp_path, policy_file):
    """``propguard lint`` builds the callers it tries from ``service_roles:`` atoms: a
    relayed-only create without read is still found as a blind write, and the upper-case
    spelling is no longer reported as never matching (PG306)."""
    from propguard.lint import LintOptions, lint_paths
    from propguard.rules.loading import RulesOptions

    path = policy_file('"svc_title": "service_roles:Service"\n"admin_only": "role:admin"\n')
    rules = tmp_path / "rules.conf"
    rules.write_text(
        section("^a$", create="svc_title", read="admin_only", update="admin_only", delete="!")
        + "\n"
        + section(".*", create="admin_only", read="admin_only", update="admin_only")
    )
    options = LintOptions(
        rules=RulesOptions(rule_format="policies", policy_file=path, policy_namespaces=("glance",))
    )
    problems = lint_paths([str(rules), path], options)
    assert [p.code for p in problems] == ["PG206"], [str(p) for p in problems]
    assert "service:service may create" in problems[0].message


# -- every key of oslo.context's to_policy_values(), domain ids included ----------------

DOMAIN_POLICY = (
    '"user_in_d1": "user_domain_id:d1"\n'
    '"project_in_d1": "project_domain_id:d1"\n'
    '"domain_scoped_d1": "domain_id:d1"\n'
    '"nova_from_service_domain": "service_user_domain_id:svc-d and service_project_domain_id:svc-d"\n'
    '"nova_user": "service_user_id:nova-uid and service_project_id:svcproj"\n'
    '"owner_d1_member": "role:member and user_domain_id:d1 and project_domain_id:d1"\n'
    '"admin_project": "is_admin_project:True"\n'
    '"system_reader": "system_scope:all and role:reader"\n'
    '"user_u1": "user_id:u1 and project_id:p1"\n'
)


def domain_request(domain="d1", service=True, **extra):
    """auth_token's environ for a confirmed user in ``domain``, relayed by Nova if asked."""
    environ = {
        "keystone.token_auth": object(),
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_ROLES": "member,reader",
        "HTTP_X_USER_ID": "u1",
        "HTTP_X_USER_DOMAIN_ID": domain,
        "HTTP_X_PROJECT_ID": "p1",
        "HTTP_X_PROJECT_DOMAIN_ID": domain,
        "HTTP_X_DOMAIN_ID": None,
        "HTTP_X_IS_ADMIN_PROJECT": "False",
        "HTTP_OPENSTACK_SYSTEM_SCOPE": None,
    }
    if service:
        environ.update(
            {
                "HTTP_X_SERVICE_IDENTITY_STATUS": "Confirmed",
                "HTTP_X_SERVICE_ROLES": "service",
                "HTTP_X_SERVICE_USER_ID": "nova-uid",
                "HTTP_X_SERVICE_USER_DOMAIN_ID": "svc-d",
                "HTTP_X_SERVICE_PROJECT_ID": "svcproj",
                "HTTP_X_SERVICE_PROJECT_DOMAIN_ID": "svc-d",
            }
        )
    environ.update(extra)
    return environ


DOMAIN_REQUESTS = {
    "d1-relayed": domain_request(),
    "d1-direct": domain_request(service=False),
    "d2-relayed": domain_request("d2"),
    "domain-scoped": domain_request(None, HTTP_X_DOMAIN_ID="d1", HTTP_X_PROJECT_ID=None),
    "admin-project": domain_request(HTTP_X_IS_ADMIN_PROJECT="True"),
    "service-invalid": domain_request(HTTP_X_SERVICE_IDENTITY_STATUS="Invalid"),
}


@pytest.mark.parametrize("who", sorted(DOMAIN_REQUESTS))
@pytest.mark.parametrize(
    "name",
    [line.split('"')[1] for line in DOMAIN_POLICY.splitlines()],
)
def test_policy_credentials_match_glance(policy_file, tmp_path, who, name):
    """Each check evaluates as in glance-api: oslo.policy's own Enforcer over
    ``RequestContext.from_environ`` (what Glance's ``context`` filter builds), empty target.
    (``service-invalid``: auth_token strips a rejected service token's headers, so both see
    no service identity.)"""
    from oslo_config import cfg
    from oslo_context.context import RequestContext
    from oslo_policy import policy as oslo_policy

    environ = dict(DOMAIN_REQUESTS[who])
    if environ.get("HTTP_X_SERVICE_IDENTITY_STATUS") == "Invalid":
        for key in [k for k in environ if k.startswith("HTTP_X_SERVICE_") and "STATUS" not in k]:
            environ[key] = None
    path = policy_file(DOMAIN_POLICY)
    conf = cfg.ConfigOpts()
    conf([], project="glance-test", default_config_files=[], default_config_dirs=[])
    glance = oslo_policy.Enforcer(conf, policy_file=path)
    glance.load_rules()
    expected = glance.enforce(name, {}, RequestContext.from_environ(environ))
    engine = compile_text(section("a", read=name), policy_file=path)
    assert engine.allowed("a", "read", credentials_from_environ(environ)) is expected


def test_domain_policies_allow_what_glance_allows(policy_file):
    """The reviewer's case: these evaluated False under propguard and True in Glance."""
    path = policy_file(DOMAIN_POLICY)
    text = section(
        "a",
        create="owner_d1_member",
        read="user_in_d1",
        update="project_in_d1",
        delete="nova_from_service_domain",
    )
    engine = compile_text(text, policy_file=path)
    caller = credentials_from_environ(domain_request())
    assert all(engine.allowed("a", op, caller) for op in OPERATIONS)
    direct = credentials_from_environ(domain_request(service=False))
    assert engine.allowed("a", "read", direct)
    assert not engine.allowed("a", "delete", direct)


def test_decision_cache_is_keyed_by_domain(policy_file):
    """A cached answer for a caller in d1 is never reused for the same user name, roles and
    project in d2, in either order, on the fast path and in decide()."""
    path = policy_file(DOMAIN_POLICY)
    text = section(
        "a",
        read="user_in_d1",
        update="project_in_d1",
        delete="nova_from_service_domain",
        create="domain_scoped_d1",
    )
    engine = compile_text(text, policy_file=path)
    d1 = credentials_from_environ(domain_request())
    d2 = credentials_from_environ(domain_request("d2"))
    other_service_domain = credentials_from_environ(
        domain_request(HTTP_X_SERVICE_PROJECT_DOMAIN_ID="elsewhere")
    )
    domain_scoped = credentials_from_environ(DOMAIN_REQUESTS["domain-scoped"])
    domain_scoped_d2 = credentials_from_environ(
        domain_request(None, HTTP_X_DOMAIN_ID="d2", HTTP_X_PROJECT_ID=None)
    )
    for _ in range(2):  # second round: every answer comes from the cache
        assert engine.allowed("a", "read", d1) and not engine.allowed("a", "read", d2)
        assert engine.allowed("a", "update", d1) and not engine.allowed("a", "update", d2)
        assert engine.allowed("a", "delete", d1)
        assert not engine.allowed("a", "delete", other_service_domain)
        assert engine.allowed("a", "create", domain_scoped)
        assert not engine.allowed("a", "create", domain_scoped_d2)
        assert engine.decide("a", "read", d2).allowed is False
    assert engine._cached_allowed.cache_info().hits >= 6
