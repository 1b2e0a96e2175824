"""Differential test: ``propguard lint`` is never cleaner than the filter's loader.

Generated and mutated rules files, policy files and ``policy.d`` directories
(the shapes that broke it: files without an extension, ``.YAML``, ``.bak``,
``~``, dangling links, non-UTF-8 bytes, NUL and control characters, a
``[a{4294967296}]`` section, deep ``rule:`` chains and cycles, unparsable
check strings, a policy set that fails while the format is auto-detected).
For each case, with the same options:

* the loader (``RulesOptions.load``, what the filter runs) either builds an
  engine that answers without raising, or raises ``RulesError`` whose
  problems all name a file and a line; nothing else escapes it;
* lint never raises, and reports at least one error whenever the loader
  refuses (no false clean), for the rules file, for the policy file alone
  and for the directory holding them.

The cases are not derandomized: each run explores with its own seed
(``explore``: printed, replayed with ``PROPGUARD_HYPOTHESIS_SEED``). A third
of them are drawn from valid parts only and unmutated (:func:`cases`'
``clean``), since a differential says most where the loader accepts; the run
fails unless enough generated cases were accepted by the loader
(:class:`explore.Reach`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass

import hypothesis.strategies as st
from explore import Reach, exploring
from hypothesis import HealthCheck, given

from propguard.credentials import Credentials
from propguard.lint import LintOptions, LintUsageError, lint_run
from propguard.rules.loading import RulesOptions
from propguard.rules.model import OPERATIONS, RulesError, Severity
from propguard.rules.policy_set import PolicyLoadError, load_policy_set

EXAMPLES = int(os.environ.get("PROPGUARD_DIFFERENTIAL_EXAMPLES", "2500"))

PATTERNS = [
    "^x_.*",
    ".*",
    "^a$",
    "foo",
    "^(b|c)_",
    "x_foo_*",
    "^img_signature(_hash)?$",
    "a{4294967296}",
    "(" * 1500 + "a" + ")" * 1500,
    "a{4294967294}",
    "[0-9",
    "^os_glance_x",
    "(a+)+$",
    "^(ab)\\1",
    "(?i)^Case",
]
ROLE_VALUES = ["admin", "admin,member", "@", "!", "member+service:nova", "", "admin,", "@,admin"]
POLICY_NAMES = [
    "p_admin",
    "p_member",
    "p_chain",
    "p_deep",
    "p_cycle",
    "p_broken",
    "p_percent",
    "p_none",
    "context_is_admin",
    "default",
    "contxt_is_admin",
    "nosuch",
    "@",
    "!",
]
CHECKS = [
    "role:admin",
    "role:admin or role:member",
    "rule:p_admin",
    "rule:undefined_x",
    "role:admin or or x",
    "",
    "!",
    "@",
    "not role:reader",
    "service_roles:service and role:member",
    "role:50%",
    "a[:x",
    "(role:a",
    "rule:context_is_admin",
]
POLICY_D_NAMES = [
    "10-a.yaml",
    "20-override",
    "30.YAML",
    "x.bak",
    "y~",
    "z.conf",
    ".hidden.yaml",
    "40.json",
]
TOKENS = [
    "\x00",
    "\x07",
    "\x0c",
    "\x1c",
    "\u2028",
    "%",
    ",",
    "+",
    "service:",
    "[",
    "]",
    "\n",
    "\n[DEFAULT]\nread = x\n",
    "\n[dup]\ncreate = a\n",
    "rade = admin\n",
    "\n  continued",
    "# propguard: disable=all\n",
    '"',
    ": [",
    "- ",
    "\t",
    "{",
    "*",
    "&a ",
    "!!python/object ",
    "\ufeff",
]
BAD_BYTES = [b"\xff", b"\xc3(", b"\xed\xa0\x80"]
#: The valid parts, for clean cases (the loader accepts most of them).
GOOD_PATTERNS = ["^x_.*", "^a$", "foo", "^(b|c)_", "^img_signature(_hash)?$", "(?i)^Case"]
GOOD_ROLE_VALUES = ["admin", "admin,member", "@", "!", "member+service:nova"]
GOOD_POLICY_NAMES = ["p_admin", "p_member", "p_chain", "context_is_admin", "default", "@", "!"]
GOOD_CHECKS = [
    "role:admin",
    "role:admin or role:member",
    "not role:reader",
    "service_roles:service and role:member",
    "rule:context_is_admin",
    "@",
    "!",
]


@dataclass
class Case:
    rules_text: bytes
    policy_text: bytes | None
    policy_d: list[tuple[str, bytes | None]]  # None: a dangling symlink
    rule_format: str
    policy_dirs: tuple[str, ...]
    namespaces: tuple[str, ...]


def _mutate(draw, text: str) -> bytes:
    data = text
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if kind == "insert":
            data = data[:where] + draw(st.sampled_from(TOKENS)) + data[where:]
        elif kind == "delete" and data:
            end = min(len(data), where + draw(st.integers(1, 12)))
            data = data[:where] + data[end:]
        else:
            line_start = data.rfind("\n", 0, where) + 1
            line_end = data.find("\n", where)
            line_end = len(data) if line_end < 0 else line_end + 1
            data = data[:line_end] + data[line_start:line_end] + data[line_end:]
    raw = data.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 15)) == 0:
        where = draw(st.integers(0, len(raw)))
        raw = raw[:where] + draw(st.sampled_from(BAD_BYTES)) + raw[where:]
    return raw


@st.composite
def rules_files(draw, policies: bool, clean: bool = False) -> bytes:
    sections = []
    count = draw(st.integers(1, 4))
    for i in range(count):
        if clean:
            pattern = draw(st.sampled_from(GOOD_PATTERNS if i < count - 1 else [".*", "^y_"]))
        elif i < count - 1:
            pattern = draw(st.sampled_from(PATTERNS))
        else:
            pattern = draw(st.sampled_from([".*", "^y_", "a{4294967296}"]))
        values = []
        for op in OPERATIONS:
            if clean:
                pool = GOOD_POLICY_NAMES if policies else GOOD_ROLE_VALUES
            else:
                pool = POLICY_NAMES if policies else ROLE_VALUES
            values.append(f"{op} = {draw(st.sampled_from(pool))}")
        sections.append(f"[{pattern}]\n" + "\n".join(values) + "\n")
    text = "\n".join(sections)
    return text.encode() if clean else _mutate(draw, text)


@st.composite
def clean_policy_files(draw) -> bytes:
    """A policy file defining the names clean rules files use, with valid checks."""
    lines = [f'"p_admin": "{draw(st.sampled_from(GOOD_CHECKS))}"']
    lines.append(f'"p_member": "{draw(st.sampled_from(GOOD_CHECKS))}"')
    lines.append('"p_chain": "' + " or ".join(f"role:r{i}" for i in range(3)) + '"')
    return ("\n".join(lines) + "\n").encode()


@st.composite
def policy_files(draw) -> bytes:
    lines = []
    for name in POLICY_NAMES[:8]:
        if draw(st.integers(0, 4)) == 0:
            continue  # undefined
        if name == "p_deep":
            depth = draw(st.sampled_from([3, 3, 3, 120, 1500]))
            lines.append('"p_deep": "rule:deep_0"')
            lines += [f'"deep_{i}": "rule:deep_{i + 1}"' for i in range(depth)]
            lines.append(f'"deep_{depth}": "role:admin"')
            continue
        if name == "p_cycle":
            lines.append('"p_cycle": "rule:cycle_b"')
            lines.append('"cycle_b": "rule:p_cycle"' if draw(st.booleans()) else '"cycle_b": "@"')
            continue
        if name == "p_none":
            lines.append(draw(st.sampled_from(['"p_none":', '"p_none": 1', '"p_none": [1]'])))
            continue
        if name == "p_percent":
            lines.append('"p_percent": "role:50%"')
            continue
        if name == "p_chain":
            terms = draw(st.sampled_from([3, 40]))
            lines.append('"p_chain": "' + " or ".join(f"role:r{i}" for i in range(terms)) + '"')
            continue
        lines.append(f'"{name}": "{draw(st.sampled_from(CHECKS))}"')
    return _mutate(draw, "\n".join(lines) + "\n")


@st.composite
def cases(draw) -> Case:
    """A case; a third are ``clean`` (valid parts, no mutation, no policy.d)."""
    clean = draw(st.integers(0, 2)) == 0
    rule_format = draw(st.sampled_from(["roles", "policies", "auto"]))
    policies = rule_format == "policies" or (rule_format == "auto" and draw(st.booleans()))
    if clean:
        return Case(
            rules_text=draw(rules_files(policies, clean=True)),
            policy_text=draw(clean_policy_files()) if policies or draw(st.booleans()) else None,
            policy_d=[],
            rule_format=rule_format,
            policy_dirs=(),
            namespaces=("glance",),
        )
    policy_text = draw(policy_files()) if draw(st.integers(0, 3)) else None
    policy_d: list[tuple[str, bytes | None]] = []
    if policy_text is not None and draw(st.booleans()):
        for name in draw(st.lists(st.sampled_from(POLICY_D_NAMES), max_size=3, unique=True)):
            policy_d.append((name, draw(policy_files())))
        if draw(st.integers(0, 5)) == 0:
            policy_d.append(("50-dangling", None))
    return Case(
        rules_text=draw(rules_files(policies)),
        policy_text=policy_text,
        policy_d=policy_d,
        rule_format=rule_format,
        policy_dirs=draw(st.sampled_from([("policy.d",), (), ("policy.d", "absent.d")])),
        namespaces=draw(
            st.sampled_from(
                [("glance",), (), ("glance", "no-such-namespace"), ("glance", "propguard")]
            )
        ),
    )


def _materialise(case: Case, folder: str) -> tuple[str, str | None]:
    rules = os.path.join(folder, "protections.conf")
    with open(rules, "wb") as handle:
        handle.write(case.rules_text)
    policy = None
    if case.policy_text is not None:
        policy = os.path.join(folder, "policy.yaml")
        with open(policy, "wb") as handle:
            handle.write(case.policy_text)
        if case.policy_d:
            os.mkdir(os.path.join(folder, "policy.d"))
        for name, content in case.policy_d:
            target = os.path.join(folder, "policy.d", name)
            if content is None:
                os.symlink(os.path.join(folder, "nowhere"), target)
            else:
                with open(target, "wb") as handle:
                    handle.write(content)
    return rules, policy


def _errors(problems) -> list:
    return [p for p in problems if p.severity is Severity.ERROR]


CALLERS = [
    Credentials.for_roles(["admin"]),
    Credentials.for_roles(["member"], ["service", "nova"]),
    Credentials(),
]


def _loader(options: RulesOptions):
    """The filter's load; only RulesError may escape, each problem with a file and a line."""
    try:
        engine = options.load()
    except RulesError as exc:
        for problem in exc.problems:
            assert problem.position.file and problem.position.line >= 1, problem
        return exc
    for name in ("x_a", "a", "foo", "os_glance_x", "zz", "img_signature"):
        for op in OPERATIONS:
            for creds in CALLERS:
                engine.decide(name, op, creds)
    return None


def check_case(case: Case, reach: Reach | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="pg-diff-") as folder:
        rules, policy = _materialise(case, folder)
        options = RulesOptions(
            rules_file=rules,
            rule_format=case.rule_format,
            policy_file=policy,
            policy_dirs=case.policy_dirs,
            policy_namespaces=case.namespaces,
        )
        lint_options = LintOptions(rules=options)
        run = lint_run([rules], lint_options)
        detected = run.rules_files[rules]
        refused = _loader(dataclasses.replace(options, rule_format=str(detected)))
        if reach is not None:
            reach.hit("loader refused" if refused is not None else "loader accepted")
        if refused is not None:
            assert _errors(run.problems), f"false clean: the loader refused: {refused}"
        if policy is not None:
            try:
                load_policy_set(policy, case.namespaces, case.policy_dirs)
            except PolicyLoadError as exc:
                policy_run = lint_run([policy], lint_options)
                assert _errors(policy_run.problems), f"false clean (policy file): {exc}"
        # The directory holding them: every rules file lint found there is read as above.
        try:
            dir_run = lint_run(
                [folder],
                LintOptions(
                    rules=RulesOptions(
                        rule_format=case.rule_format,
                        policy_dirs=case.policy_dirs,
                        policy_namespaces=case.namespaces,
                    )
                ),
            )
        except LintUsageError:
            return
        if rules in dir_run.rules_files and refused is not None and policy is not None:
            paired = RulesOptions(
                rules_file=rules,
                rule_format=str(dir_run.rules_files[rules]),
                policy_file=policy,
                policy_dirs=case.policy_dirs,
                policy_namespaces=case.namespaces,
            )
            if _loader(paired) is not None:
                assert _errors(dir_run.problems), "false clean (directory)"


@exploring(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def _explore_lint(reach: Reach, case: Case) -> None:
    check_case(case, reach)


def test_lint_is_never_cleaner_than_the_loader():
    """No false clean on any case, and the loader accepted at least a fifth of them."""
    reach = Reach()
    _explore_lint(reach)
    reach.require(**{"loader accepted": EXAMPLES // 5})
