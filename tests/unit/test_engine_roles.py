"""The compiled engine, roles format: Glance's decision semantics (reference §1.4, §1.5,
§3.2 ``TestPropertyRulesWithRoles`` and the mixin, §3.3) and propguard's documented
differences, plus decisions, bounded caches and thread safety."""

from __future__ import annotations

import copy
import random
import string
import threading

import pytest
from glance_tables import GLANCE_CONFIG_SECTIONS, SHARED_ROWS

from propguard.identity import ANONYMOUS, credentials_from_environ
from propguard.rules import OPERATIONS, ServiceRoleMode, compile_rules, load_rules, parse_rules_text


def engine_for(text, fmt="roles", **options):
    return compile_rules(parse_rules_text("t.conf", text, fmt), **options)


def section(name, **ops):
    values = {op: ops.get(op, "!") for op in OPERATIONS}
    return f"[{name}]\n" + "".join(f"{op} = {v}\n" for op, v in values.items())


def keystone_environ(roles="", service_roles=None, **extra):
    """What keystonemiddleware's auth_token leaves for a valid user (and service) token."""
    environ = {
        "keystone.token_auth": object(),
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_ROLES": roles,
        "HTTP_X_USER_ID": "u1",
        "HTTP_X_PROJECT_ID": "p1",
    }
    if service_roles is not None:
        environ["HTTP_X_SERVICE_IDENTITY_STATUS"] = "Confirmed"
        environ["HTTP_X_SERVICE_ROLES"] = service_roles
    environ.update(extra)
    return environ


# --- §3.2 TestPropertyRulesWithRoles: Glance's table, Glance's outcomes -------

GLANCE_ROLES_TABLE = [
    # (test name, property, op, roles, expected)
    ("read_permitted_admin_role", "test_prop", "read", ["admin"], True),
    ("read_permitted_specific_role", "x_owner_prop", "read", ["member"], True),
    ("read_unpermitted_role", "test_prop", "read", ["member"], False),
    ("create_permitted_admin_role", "test_prop", "create", ["admin"], True),
    ("create_permitted_specific_role", "x_owner_prop", "create", ["member"], True),
    ("create_unpermitted_role", "test_prop", "create", ["member"], False),
    ("update_permitted_admin_role", "test_prop", "update", ["admin"], True),
    ("update_permitted_specific_role", "x_owner_prop", "update", ["member"], True),
    ("update_unpermitted_role", "test_prop", "update", ["member"], False),
    ("delete_permitted_admin_role", "test_prop", "delete", ["admin"], True),
    ("delete_permitted_specific_role", "x_owner_prop", "delete", ["member"], True),
    ("delete_unpermitted_role", "test_prop", "delete", ["member"], False),
    ("invalid_action", "test_prop", "hall", ["admin"], False),
    *SHARED_ROWS,
    *[(f"case_insensitive/{op}", "x_case_insensitive", op, ["member"], True) for op in OPERATIONS],
]


@pytest.mark.parametrize(
    "prop,op,roles,expected",
    [row[1:] for row in GLANCE_ROLES_TABLE],
    ids=[row[0] for row in GLANCE_ROLES_TABLE],
)
def test_glance_roles_table(roles_engine, creds, prop, op, roles, expected):
    c = creds(*roles)
    assert roles_engine.allowed(prop, op, c) is expected
    assert roles_engine.decide(prop, op, c).allowed is expected


def test_config_and_rules_loaded_in_order(roles_engine):
    """Glance ``test_property_config_loaded_in_order`` / ``test_property_rules_loaded_in_order``.

    Difference: the injected first section is ``^os_glance`` (anchored), not ``os_glance.*``.
    """
    expected = ["^os_glance", *GLANCE_CONFIG_SECTIONS[1:]]
    assert [s.pattern for s in roles_engine.sections] == expected
    assert roles_engine.sections[0].builtin
    assert [s.position.line for s in roles_engine.sections[1:4]] == [1, 7, 13]


def test_whitespace_rules_decide(creds):
    """Glance ``test_property_protection_with_whitespace``: ``test_prop_1`` read."""
    engine = engine_for(
        "[^test_prop.*]\ncreate = member ,fake-role\nread = fake-role, member\n"
        "update = fake-role,  member\ndelete = fake-role,   member\n"
    )
    assert engine.allowed("test_prop_1", "read", creds("member"))
    assert engine.allowed("test_prop_1", "read", creds("fake-role"))


def test_inject_os_glance(creds):
    """Glance mixin ``test_inject_os_glance``: a user ``[os_glance_store]`` (all ``!``) is
    dropped, the built-in section comes first, and ``os_glance.*`` is allowed for every op."""
    engine = engine_for(
        section("x_foo", create="fake-role", read="member", update="fake-role", delete="fake-role")
        + section("os_glance_store")
    )
    assert engine.allowed("x_foo", "read", creds("member"))
    patterns = [s.pattern for s in engine.sections]
    assert patterns == ["^os_glance", "x_foo"]
    assert "os_glance_store" not in patterns
    assert [p.code for p in engine.document.problems] == ["PG116"]
    for op in OPERATIONS:
        assert engine.allowed("os_glance.*", op, creds(""))
        assert engine.allowed("os_glance_store", op, creds(""))


def test_inject_os_glance_with_wrong_values_reinjected(creds):
    """Glance mixin ``test_inject_os_glance_with_wrong_values_reinjected``: Glance resets a
    tampered global ``CONFIG``; propguard has no global state and a user section cannot
    override the built-in one, so every compile gives ``@`` for all four ops."""
    doc = parse_rules_text(
        "t.conf", section("x_foo", read="member") + section("os_glance.*"), "roles"
    )
    for _ in range(2):
        engine = compile_rules(doc)
        builtin = engine.sections[0]
        assert builtin.builtin
        assert all(builtin.values[op].everyone for op in OPERATIONS)
        assert all(engine.allowed("os_glance_x", op, ANONYMOUS) for op in OPERATIONS)


# --- §3.3 proxy tests, at the decision level -----------------------------------

GLANCE_PROXY_TABLE = [
    ("get_image/visible", "spl_create_prop", "read", "spl_role", True),
    ("get_image/visible", "spl_read_prop", "read", "spl_role", True),
    ("get_image/visible", "spl_update_prop", "read", "spl_role", True),
    ("get_image/visible", "spl_delete_prop", "read", "spl_role", True),
    ("get_image/forbidden_hidden", "forbidden", "read", "spl_role", False),
    ("read_image_with_extra_prop", "spl_fake_prop", "read", "spl_role", False),
    ("read_as_admin", "foo", "read", "admin", True),
    ("read_as_unpermitted_role", "foo", "read", "unpermitted_role", False),
    ("update_as_admin", "foo", "update", "admin", True),
    ("update_unpermitted_after_read", "spl_read_prop", "update", "spl_role", False),
    ("update_reserved", "spl_create_prop", "update", "spl_role", False),
    ("create_admin", "boo", "create", "admin", True),
    ("create_reserved", "boo", "create", "spl_role", False),
    ("delete_as_admin", "foo", "delete", "admin", True),
    ("delete_reserved", "spl_read_prop", "delete", "spl_role", False),
    ("factory_extra_prop", "spl_create_prop", "create", "spl_role", True),
    ("factory_reserved", "foo", "create", "spl_role", False),
    ("factory_admin", "foo", "create", "admin", True),
    ("factory_admin", "spl_create_prop", "create", "admin", True),
    ("factory_invalid_role", "spl_create_prop", "create", "imaginary-role", False),
]


@pytest.mark.parametrize(
    "prop,op,role,expected",
    [row[1:] for row in GLANCE_PROXY_TABLE],
    ids=[f"{row[0]}:{row[1]}" for row in GLANCE_PROXY_TABLE],
)
def test_glance_proxy_cases(roles_engine, creds, prop, op, role, expected):
    assert roles_engine.allowed(prop, op, creds(role)) is expected


# --- §1.4 decision algorithm / §1.5 verified edge cases ---------------------------


def test_first_match_wins_and_search_is_unanchored(creds):
    """§1.5: ``[spl]`` (member) then ``[.*]`` (admin): ``xsplx``/read/member => True."""
    engine = engine_for(section("spl", read="member") + section(".*", read="admin"))
    member, admin = creds("member"), creds("admin")
    assert engine.allowed("xsplx", "read", member)
    assert not engine.allowed("xsplx", "read", admin)  # [spl] matched first, admin not listed
    assert engine.decide("xsplx", "read", member).section_name == "spl"
    assert engine.allowed("other", "read", admin)
    assert not engine.allowed("other", "read", member)


@pytest.mark.parametrize(
    "prop,section_name",
    [
        ("spl_create_prop_policy", "spl_create_prop"),
        ("spl_new_prop", ".*"),
        ("foo", ".*"),
        ("test_prop", ".*"),
        ("x_foo_bar", "x_foo_*"),
        ("x_foo_baz", "x_foo_*"),
        ("x_foobar", "x_foo_*"),  # x_fo + o + _*
        ("x_foo_matcher", "x_foo_matcher"),
        ("a_x_foo_matcher_b", "x_foo_matcher"),
        ("xx_owner_a", ".*"),  # ^ anchors
        ("x_owner_a", "^x_owner_.*"),
    ],
)
def test_matching_notes_of_glance_test_file(roles_engine, prop, section_name):
    """§3.1 "Matching notes": unanchored search over the Glance test file."""
    assert roles_engine.section_for(prop).pattern == section_name


def test_no_matching_section_denies_everyone_even_admin(creds):
    """§1.5: ``[^a$]`` only, ``b``/read/admin => False."""
    engine = engine_for(section("^a$", create="@", read="@", update="@", delete="@"))
    superuser = creds(
        "admin", service=["service", "admin"], system_scope="all", is_admin_project=True
    )
    for op in OPERATIONS:
        assert not engine.allowed("b", op, superuser)
    decision = engine.decide("b", "read", superuser)
    assert decision.section is None and decision.line is None
    assert "no section matches" in decision.reason


def test_os_glance_builtin_is_anchored(creds):
    """Difference: Glance's injected ``[os_glance.*]`` is a substring match, so with only
    ``[^a$]`` Glance allows ``x_os_glance_y``/create for a caller with role ``nobody``;
    propguard's ``^os_glance`` does not match it (denied: no section)."""
    engine = engine_for(section("^a$", create="admin"))
    nobody = creds("nobody")
    assert not engine.allowed("x_os_glance_y", "create", nobody)
    assert engine.section_for("x_os_glance_y") is None
    assert engine.allowed("os_glance_y", "create", nobody)
    assert engine.allowed("os_glance_import_task", "delete", ANONYMOUS)


def test_os_glance_builtin_comes_before_user_sections(creds):
    engine = engine_for(section(".*", read="admin"))
    decision = engine.decide("os_glance_foo", "read", creds("member"))
    assert decision.allowed
    assert decision.section_name == "^os_glance" and decision.line is None
    assert decision.reason == "'@': everyone"


def test_builtin_section_can_be_switched_off(creds):
    engine = engine_for(section(".*", read="admin"), os_glance_section=False)
    assert not engine.allowed("os_glance_foo", "read", creds("member"))
    assert engine.allowed("os_glance_foo", "read", creds("admin"))


def test_empty_file(creds):
    """§1.5: an empty file has only the injected section; ``anything``/read/admin => False."""
    engine = engine_for("")
    assert [s.pattern for s in engine.sections] == ["^os_glance"]
    assert not engine.allowed("anything", "read", creds("admin"))


def test_no_rules_at_all_fails_closed(creds):
    """Difference: Glance's ``if not self.rules: return True`` (unreachable since 32.0.0)
    would allow everything; propguard with no section at all denies."""
    engine = engine_for("", os_glance_section=False)
    assert engine.sections == ()
    assert not engine.allowed("anything", "read", creds("admin"))


def test_empty_value_denies_everyone(creds):
    """§1.5: ``create =`` => ``a``/create/admin False (warning PG201)."""
    engine = engine_for("[a]\ncreate =\nread = admin\nupdate = admin\ndelete = admin\n")
    assert not engine.allowed("a", "create", creds("admin"))
    assert engine.allowed("a", "read", creds("admin"))
    assert "nobody" in engine.decide("a", "create", creds("admin")).reason


def test_bang_hides_from_admin(creds):
    """§1.4 "Admin: no bypass": ``[x] read = !`` hides ``x`` from admins too."""
    engine = engine_for(section("x", create="admin"))
    admin = creds("admin", system_scope="all", is_admin_project=True)
    assert not engine.allowed("x", "read", admin)
    assert engine.allowed("x", "create", admin)


def test_rule_roles_are_case_insensitive_and_request_roles_lower_cased(creds):
    """§1.5 ``create = Admin``: Glance gives True for roles ``['admin']`` and False for a
    raw context with ``['Admin']`` (only its context middleware lower-cases user roles).
    Difference: propguard lower-cases on both sides, so a token role ``Admin`` matches."""
    engine = engine_for(section("a", create="Admin"))
    assert engine.allowed("a", "create", creds("admin"))
    from_token = credentials_from_environ(keystone_environ(roles="Admin"))
    assert from_token.roles == frozenset({"admin"})
    assert engine.allowed("a", "create", from_token)


def test_service_roles_are_lower_cased_too(creds):
    """§1.4: Glance does not lower-case service roles, so ``X-Service-Roles: SVC`` does not
    match a rule ``svc`` (while ``X-Roles: SVC`` does). Difference: propguard lower-cases
    service roles as well."""
    engine = engine_for(section("a", create="service:svc"))
    union = engine_for(section("a", create="svc"), mode="union")
    environ = keystone_environ(roles="member", service_roles="service,SVC")
    c = credentials_from_environ(environ)
    assert c.service_roles == frozenset({"service", "svc"})
    assert engine.allowed("a", "create", c)
    assert union.allowed("a", "create", c)


def test_service_roles_strict_vs_union(creds):
    """§1.5 ``create = svc`` with roles ``['member']``, service roles ``['svc']``: Glance
    True (union). Difference: in propguard's default strict mode service roles count only
    through ``service:<role>`` entries (False); ``union`` mode is Glance-compatible (True)."""
    c = creds("member", service=["svc"])
    text = section("a", create="svc", read="service:svc", update="admin")
    strict = engine_for(text)
    union = engine_for(text, mode=ServiceRoleMode.UNION)
    assert strict.mode is ServiceRoleMode.STRICT
    assert not strict.allowed("a", "create", c)
    assert union.allowed("a", "create", c)
    # An explicit service entry works in both modes.
    assert strict.allowed("a", "read", c) and union.allowed("a", "read", c)
    # A user role named like the service role does not satisfy service:svc.
    assert not strict.allowed("a", "read", creds("svc"))
    assert not union.allowed("a", "read", creds("svc"))
    # Union: a service token holding admin grants admin's rights (as in Glance).
    assert union.allowed("a", "update", creds("member", service=["admin"]))
    assert not strict.allowed("a", "update", creds("member", service=["admin"]))


def test_conjunction_needs_user_role_and_service_role(creds):
    """``member+service:nova``: the user holds member *and* a service token holds nova."""
    engine = engine_for(section("a", create="member+service:nova, admin"))
    assert engine.allowed("a", "create", creds("member", service=["nova"]))
    assert engine.allowed("a", "create", creds("admin"))
    assert not engine.allowed("a", "create", creds("member"))
    assert not engine.allowed("a", "create", creds("reader", service=["nova"]))
    assert not engine.allowed("a", "create", creds("member", "nova"))
    union = engine_for(section("a", create="member+service:nova"), mode="union")
    assert not union.allowed("a", "create", creds("member", "nova"))
    assert union.allowed("a", "create", creds("member", service=["nova"]))
    # In union mode the user part can be met by a service role, the service part cannot
    # be met by a user role.
    assert union.allowed("a", "create", creds(service=["member", "nova"]))
    decision = engine.decide("a", "create", creds("member", service=["nova"]))
    assert decision.reason == (
        "role entry 'member+service:nova' matched (rule lists: member+service:nova, admin)"
    )


def test_anonymous_gets_only_everyone(roles_engine):
    assert roles_engine.allowed("x_all_permitted", "read", ANONYMOUS)
    assert not roles_engine.allowed("x_owner_a", "read", ANONYMOUS)
    assert not roles_engine.allowed("anything", "read", ANONYMOUS)


def test_checks_do_not_mutate_credentials(creds):
    """§1.5: three checks with roles ``['member']`` and service roles ``['svc','admin']``
    grow Glance's ``context.roles`` to ``['member','svc','admin','svc','admin','svc','admin']``
    (and leak into later policy checks). Difference: propguard's Credentials are frozen
    and no check changes them, in either mode."""
    c = creds("member", service=["svc", "admin"])
    snapshot = copy.deepcopy(c)
    roles_before, hash_before = c.roles, hash(c)
    text = section("a", create="svc", read="admin", update="member")
    for mode in ("strict", "union"):
        engine = engine_for(text, mode=mode)
        results = [
            (engine.allowed("a", op, c), engine.decide("a", op, c).allowed)
            for _ in range(3)
            for op in OPERATIONS
        ]
        assert results == results[:4] * 3
        assert c == snapshot
        assert c.roles is roles_before and c.roles == frozenset({"member"})
        assert c.service_roles == frozenset({"svc", "admin"})
        assert hash(c) == hash_before
    with pytest.raises(AttributeError):
        c.roles = frozenset({"x"})  # type: ignore[misc]
    # And strict mode never lets the service roles act as user roles.
    strict = engine_for(text)
    assert [strict.allowed("a", op, c) for op in OPERATIONS] == [False, False, True, False]


# --- decide(): section, line, reason -------------------------------------------


def test_decide_names_section_line_and_reason(roles_engine, creds):
    d = roles_engine.decide("x_owner_foo", "read", creds("member"))
    assert d.allowed and d.op == "read"
    assert d.section_name == "^x_owner_.*" and d.line == 1
    assert d.reason == "role entry 'member' matched (rule lists: admin, member)"

    d = roles_engine.decide("spl_read_only_prop", "create", creds("spl_role"))
    assert not d.allowed
    assert (d.section_name, d.line) == ("spl_read_only_prop", 19)
    assert d.reason == "no role entry matched (rule lists: admin)"

    d = roles_engine.decide("x_none_read", "read", creds("admin"))
    assert not d.allowed and d.section_name == "x_none_read" and d.line == 61
    assert "'!'" in d.reason

    d = roles_engine.decide("x_all_permitted_1", "delete", ANONYMOUS)
    assert d.allowed and d.reason == "'@': everyone"

    d = roles_engine.decide("test_prop", "hall", creds("admin"))
    assert not d.allowed and d.section is None and d.reason == "unknown operation 'hall'"
    assert "line" in roles_engine.sections[1].describe()


def test_allowed_checker_and_decide_agree(roles_engine, creds):
    names = ["x_owner_a", "spl_update_prop", "x_none_delete", "x_foo_q", "zzz", "os_glance_x"]
    callers = [creds("admin"), creds("member"), creds("spl_role"), ANONYMOUS, creds("")]
    for op in [*OPERATIONS, "hall"]:
        for c in callers:
            check = roles_engine.checker(op, c)
            for name in names:
                expected = roles_engine.decide(name, op, c).allowed
                assert roles_engine.allowed(name, op, c) is expected
                assert check(name) is expected
                assert check(name) is expected  # memoised answer is the same


# --- caches and threads -------------------------------------------------------


def random_name(rng, length=12):
    """A name no section of the Glance test file matches except ``.*``."""
    return "r" + "".join(rng.choices(string.digits + "bcd", k=length))


def test_name_cache_is_bounded(data_dir, creds):
    engine = load_rules(str(data_dir / "property-protections.conf"), name_cache_size=256)
    rng = random.Random(1234)
    admin, member = creds("admin"), creds("member")
    for i in range(50_000):
        name = ("x_owner_" if i % 7 == 0 else "") + random_name(rng)
        assert engine.allowed(name, "read", admin)
        assert engine.allowed(name, "read", member) is name.startswith("x_owner_")
        assert engine.section_index.cache_info().currsize <= 256
    info = engine.section_index.cache_info()
    assert info.maxsize == 256
    assert info.currsize == 256
    assert info.misses >= 50_000 - 256


def test_decision_cache_is_bounded_by_size(data_dir, creds):
    engine = load_rules(
        str(data_dir / "property-protections.conf"), name_cache_size=8, decision_cache_size=16
    )
    for i in range(2000):
        c = creds(f"role{i}", "member")
        assert engine.allowed("x_owner_a", "update", c)
        assert not engine.allowed("plain", "update", c)
    assert engine.section_index.cache_info().currsize <= 8


def test_thread_safety_smoke(data_dir, creds):
    rng = random.Random(99)
    callers = [
        creds("admin"),
        creds("member"),
        creds("spl_role"),
        creds("member", service=["admin"]),
        ANONYMOUS,
    ]
    fixed = [
        "x_owner_a",
        "spl_create_prop",
        "spl_update_only_prop",
        "x_none_update",
        "x_foo_x",
        "os_glance_a",
        "x_os_glance_a",
    ]
    queries = [
        (
            rng.choice(fixed + [random_name(rng, 6) for _ in range(3)]),
            rng.choice(OPERATIONS),
            rng.choice(callers),
        )
        for _ in range(4000)
    ]
    path = str(data_dir / "property-protections.conf")
    reference = load_rules(path)
    expected = [reference.decide(n, o, c).allowed for n, o, c in queries]

    for mode in ("strict", "union"):
        engine = load_rules(path, mode=mode, name_cache_size=64, decision_cache_size=32)
        if mode == "union":
            union_reference = load_rules(path, mode="union")
            expected_mode = [union_reference.decide(*q).allowed for q in queries]
        else:
            expected_mode = expected
        results: dict[int, list[bool]] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(12)

        def worker(tid, engine=engine, results=results, errors=errors, barrier=barrier):
            try:
                barrier.wait()
                order = list(range(len(queries)))
                random.Random(tid).shuffle(order)
                out = [None] * len(queries)
                for i in order:
                    n, o, c = queries[i]
                    out[i] = engine.allowed(n, o, c) if tid % 2 else engine.decide(n, o, c).allowed
                results[tid] = out
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(results) == 12
        for out in results.values():
            assert out == expected_mode
    assert expected.count(True) and expected.count(False)
