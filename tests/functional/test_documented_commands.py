"""Every command the documents show is run, parsed or listed with why not; every exit code they state holds.

Issue 23: "every claim in docs/ that names a command, an option, a default or
an exit code is true (a test runs the documented commands where practical)".

* The commands are the lines of the fenced ``sh`` blocks of README.md and
  docs/*.md (continuation lines joined, comments dropped). Each is in exactly
  one of:

  - ``RUN``: run here as written, by bash in a scratch directory where the
    relative paths the docs use resolve (``policies/`` is the checkout's;
    generated files land in the scratch directory), with ``propguard``,
    ``oslo-config-generator`` and ``.venv/bin/python`` running this
    checkout's code under this interpreter; the exit status must be the one
    given, and what the document says the command produces is checked;
  - ``PARSE_ONLY``: a ``propguard`` command that needs what this machine does
    not have (a deployment's files, a database server, a broker, a listening
    address): its arguments must parse with propguard's own parser, so a
    misspelt option fails here;
  - ``NOT_RUN``: commands of a kind that cannot run here, by prefix, each
    with the reason (and the test that covers it, where one does).

  A new command in a document that is in none of them fails the test, and
  so does an entry that no document shows any more.
* A fenced block without a language must not hold a command (a synopsis is
  a ``text`` block): commands cannot hide from this test.
* Every relative link of those documents names a file that exists.
* ``EXIT_CLAIMS``: each sentence of the documents that states an exit status
  (quoted as written, so editing it fails here until this is updated), with
  the runs that show it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from propguard.cli import build_parser
from propguard.cli import main as propguard_main

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_TAGS = {"sh", "shell", "bash", "console"}
PRODUCTION = ROOT / "policies" / "production.conf"


@dataclass(frozen=True)
class Documented:
    command: str  # continuation lines joined, the trailing comment dropped
    comment: str
    where: str  # file:line


@dataclass(frozen=True)
class Block:
    tag: str
    lines: tuple[str, ...]
    where: str


def _blocks(path: Path) -> list[Block]:
    """Fenced blocks, indented ones (in list items) included, their lines dedented."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^(\s*)```(\S*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        indent, tag, start = len(fence.group(1)), fence.group(2), index + 1
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(r"^\s*```\s*$", lines[index]):
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        blocks.append(Block(tag, tuple(body), f"{path.relative_to(ROOT)}:{start}"))
        index += 1
    return blocks


def _split_comment(line: str) -> tuple[str, str]:
    """``command  # comment`` -> (command, comment); a ``#`` inside quotes is no comment."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def documented() -> list[Documented]:
    found: list[Documented] = []
    for path in DOCUMENTS:
        for block in _blocks(path):
            if block.tag not in SHELL_TAGS:
                continue
            pending = ""
            for offset, raw in enumerate(block.lines):
                line = raw.strip()
                if not pending and (not line or line.startswith("#")):
                    continue
                if line.endswith("\\"):
                    pending += line[:-1].rstrip() + " "
                    continue
                command, comment = _split_comment(pending + line)
                pending = ""
                file, start = block.where.rsplit(":", 1)
                found.append(Documented(command, comment, f"{file}:{int(start) + offset + 1}"))
    return found


# -- what happens to each documented command -----------------------------------------------


@dataclass(frozen=True)
class Run:
    status: int
    #: what the document says the command produces, checked after it ran: (scratch dir, output)
    then: Callable[[Path, subprocess.CompletedProcess[str]], None] | None = None


def _lint_clean(work: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert "4 files" in done.stderr and "0 errors" in done.stderr, done.stderr


def _explains_instance_uuid(work: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert "property 'instance_uuid'" in done.stdout
    assert all(f"{op:<6} ALLOWED" in done.stdout for op in ("create", "read", "update", "delete"))


def _matrix_page(work: Path, done: subprocess.CompletedProcess[str]) -> None:
    page = (work / "matrix.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "member+service" in page


def _a_jwt(work: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", done.stdout), done.stdout


def _the_shipped_sample(work: Path, done: subprocess.CompletedProcess[str]) -> None:
    """docs/deployment.md: "the sample is generated from the options themselves" by this."""
    written = work / "etc" / "propguard" / "propguard.conf.sample"
    assert written.read_text() == (ROOT / "etc" / "propguard" / "propguard.conf.sample").read_text()


def _the_shipped_reference(work: Path, done: subprocess.CompletedProcess[str]) -> None:
    written = (work / "docs" / "options.md").read_text()
    assert written == (ROOT / "docs" / "options.md").read_text()


RUN: dict[str, Run] = {
    "propguard lint --rules-format auto policies/*.conf policies/policy.yaml": Run(0, _lint_clean),
    "propguard explain --rules policies/production.conf --roles member,reader --service-roles "
    "service instance_uuid": Run(0, _explains_instance_uuid),
    'propguard matrix --rules policies/production.conf --roles-sets "member;admin;'
    'member+service:service" --format html -o matrix.html': Run(0, _matrix_page),
    "propguard token --alg RS256 --key-dir ./dev-keys --roles member,reader --project-id p1": Run(
        0, _a_jwt
    ),
    "propguard token --alg RS256 --key-dir ./dev-keys --service": Run(0, _a_jwt),
    "propguard token --alg HS256 --secret-file ./dev.secret --roles admin --expires-in 600": Run(
        0, _a_jwt
    ),
    "oslo-config-generator --config-file etc/propguard/propguard-config-generator.conf": Run(
        0, _the_shipped_sample
    ),
    ".venv/bin/python scripts/gen_options_doc.py": Run(0, _the_shipped_reference),
}

#: propguard commands whose arguments are parsed, not run, and why.
PARSE_ONLY: dict[str, str] = {
    "propguard check --paste-ini /etc/glance/glance-api-paste.ini --config-file "
    "/etc/glance/glance-api.conf": "a deployment's files; check's exit codes: EXIT_CLAIMS",
    "propguard check --paste-ini serve.ini --config-file /etc/propguard/propguard.conf "
    "--glance-config-file /etc/glance/glance-api.conf": "a deployment's files",
    "propguard serve --upstream http://10.0.0.5:9292 --bind 0.0.0.0:9292 --config-file "
    "/etc/propguard/propguard.conf": "a Glance at 10.0.0.5 and Keystone; test_service_units.py "
    "starts serve from its unit's command line",
    "propguard notify-filter --config-file /etc/propguard/notify-filter.conf": "a broker and that "
    "file; test_service_units.py and test_notify_service.py start the service",
    "propguard notify-filter --stdin --rules-file /etc/glance/property-protections.conf "
    "--name-collation binary --roles member,reader < notifications.jsonl > filtered.jsonl": (
        "Glance's rules file and a file of notifications; the same command on the shipped rules "
        "in EXIT_CLAIMS"
    ),
    "propguard db upgrade --connection postgresql://glance@db/propguard_relations": "a PostgreSQL "
    "server named db; test_relations_store.py migrates PostgreSQL and MariaDB",
    "propguard db upgrade --config-file /etc/glance/glance-api.conf": "glance-api.conf",
    "propguard db current --connection ...": "a placeholder for the connection; run on SQLite in "
    "EXIT_CLAIMS",
}

#: Kinds of command that cannot run here, by prefix, with why.
NOT_RUN: dict[str, str] = {
    "./scripts/demo.sh": "the demo itself (about a minute, RabbitMQ): test_live_demo.py runs it",
    "./scripts/test.sh": "the suite this test is part of",
    "python3.11 -m venv /tmp/build": "installs the build tool from the index; "
    "test_release_artifacts.py builds with the test extra's",
    "/tmp/build/bin/python -m build": "test_release_artifacts.py runs python -m build",
    "python -m build --wheel": "test_release_artifacts.py runs python -m build",
    "/opt/glance/bin/": "glance-api's virtualenv; test_release_artifacts.py installs the wheel into "
    "a fresh one and runs the README's --version and lint lines there, as written",
    "python3.11 -m venv /opt/propguard": "writes to /opt",
    "/opt/propguard/bin/pip install": "writes to /opt; test_release_artifacts.py installs the wheel",
    "install -d /etc/propguard": "writes to /etc",
    "cp /opt/propguard/": "writes to /etc",
    "systemctl ": "no systemd as PID 1 here; test_service_units.py verifies the units and runs "
    "their ExecStart, ExecReload and KillSignal",
    "journalctl ": "no systemd as PID 1 here",
    "podman ": "no container engine here; test_service_units.py parses the Containerfile",
    "rabbitmqctl ": "changes the users and permissions of the machine's broker (root)",
    ".venv/bin/python benchmarks/": "benchmarks take minutes and measure, they do not test "
    "(docs/benchmarks.md)",
    "propguard metrics-exporter --multiproc-dir /run/glance/metrics --bind 10.0.0.5:9294": (
        "serves forever on an address this machine does not have; test_metrics.py runs the exporter"
    ),
    "reno new ": "adds a release note to the tree; test_release_artifacts.py runs reno lint/report",
    "git tag ": "cuts a release",
    "git push ": "publishes a release",
    "git clone ": "clones over the network",
}


def _kind(command: str) -> str | None:
    kinds = [
        kind
        for kind, hit in (
            ("run", command in RUN),
            ("parse", command in PARSE_ONLY),
            ("not run", any(command.startswith(prefix) for prefix in NOT_RUN)),
        )
        if hit
    ]
    assert len(kinds) <= 1, (command, kinds)
    return kinds[0] if kinds else None


def test_every_documented_command_is_run_parsed_or_listed() -> None:
    commands = documented()
    assert len(commands) > 40, len(commands)
    unlisted = [f"{c.where}: {c.command}" for c in commands if _kind(c.command) is None]
    assert not unlisted, "documented commands neither run, parsed nor listed:\n" + "\n".join(
        unlisted
    )
    shown = {c.command for c in commands}
    assert not sorted(set(RUN) - shown), "RUN entries no document shows"
    assert not sorted(set(PARSE_ONLY) - shown), "PARSE_ONLY entries no document shows"
    stale = [p for p in NOT_RUN if not any(c.startswith(p) for c in shown)]
    assert not stale, f"NOT_RUN prefixes no document shows: {stale}"


#: Lines that read as a command, outside a shell block.
COMMAND_LINE = re.compile(
    r"^\s*(\$ |propguard (lint|explain|matrix|check|serve|notify-filter|token|db|relations|"
    r"demo|metrics-exporter)\b|\./scripts/|\.venv/bin/|oslo-config-generator|"
    r"oslo-config-validator|systemctl|podman|docker|pip |python)"
)


def test_no_command_hides_in_an_untagged_block() -> None:
    hidden = [
        f"{block.where}: {line}"
        for path in DOCUMENTS
        for block in _blocks(path)
        if block.tag == ""
        for line in block.lines
        if COMMAND_LINE.match(line)
    ]
    assert not hidden, "commands in fenced blocks without a language (sh, or text):\n" + (
        "\n".join(hidden)
    )


def test_relative_links_resolve() -> None:
    """README's "where to read next" and every other relative link name a file that exists."""
    broken = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in DOCUMENTS
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))
        if "://" not in target and not (path.parent / target).exists()
    ]
    assert not broken, broken


# -- running them -----------------------------------------------------------------------


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the documents' relative paths resolve; nothing written to the checkout."""
    work = tmp_path_factory.mktemp("documented")
    (work / "policies").symlink_to(ROOT / "policies")
    generator_conf = ROOT / "etc" / "propguard" / "propguard-config-generator.conf"
    (work / "etc" / "propguard").mkdir(parents=True)
    shutil.copy(generator_conf, work / "etc" / "propguard")
    (work / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "gen_options_doc.py", work / "scripts")
    (work / "docs").mkdir()
    python = sys.executable
    _executable(work / "bin" / "propguard", f'#!/bin/sh\nexec {python} -m propguard.cli "$@"\n')
    _executable(
        work / "bin" / "oslo-config-generator",
        f'#!/bin/sh\nexec {python} -m oslo_config.generator "$@"\n',
    )
    _executable(work / ".venv" / "bin" / "python", f'#!/bin/sh\nexec {python} "$@"\n')
    return work


def _bash(work: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{work / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", list(RUN), ids=lambda c: c.split(" -")[0][:40])
def test_documented_command_runs(command: str, scratch: Path) -> None:
    expected = RUN[command]
    done = _bash(scratch, command)
    assert done.returncode == expected.status, f"{command}\n{done.stdout}\n{done.stderr}"
    if expected.then:
        expected.then(scratch, done)


def _argv(command: str) -> list[str]:
    """The arguments after ``propguard``, shell redirections left out."""
    words = shlex.split(command)
    assert words[0] == "propguard", command
    argv: list[str] = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("<", ">", ">>", "2>"):
            skip = True
        else:
            argv.append(word)
    return argv


@pytest.mark.parametrize("command", list(PARSE_ONLY), ids=lambda c: c.split(" -")[0][:40])
def test_documented_command_parses(command: str) -> None:
    argv = _argv(command)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{command}: propguard's parser refuses it (exit {exc.code})")
    assert args.command == argv[0]


# -- the exit codes the documents state ---------------------------------------------------


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    status = propguard_main([str(a) for a in argv])
    capsys.readouterr()
    return status


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


BROKEN_RULES = "[^[0-9)]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"  # PG104
POLICIES_RULES = "[.*]\ncreate = p\nread = p\nupdate = p\ndelete = p\n"


def _lint_statuses(tmp: Path, capsys) -> None:
    clean = ["lint", "--name-collation", "binary"]
    assert _main([*clean, PRODUCTION], capsys) == 0
    broken = _write(tmp / "broken.conf", BROKEN_RULES)
    assert _main([*clean, broken], capsys) == 1
    warned = _write(
        tmp / "warned.conf", "[x_foo_*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
    )
    assert _main([*clean, warned], capsys) == 0  # warnings only: below --fail-on error
    assert _main([*clean, "--fail-on", "warning", warned], capsys) == 1
    assert _main([*clean, "--fail-on", "never", broken], capsys) == 0
    assert _main([*clean, "--no-such-flag", PRODUCTION], capsys) == 2
    (tmp / "empty").mkdir()
    assert _main([*clean, tmp / "empty"], capsys) == 2


def _lint_option_statuses(tmp: Path, capsys) -> None:
    lint = ["lint", "--name-collation", "binary", PRODUCTION]
    assert _main([*lint, "-O", "reload_interval=5s"], capsys) == 2
    assert _main([*lint, "-O", "rule_formt=policies"], capsys) == 2


def _explain_matrix_statuses(tmp: Path, capsys) -> None:
    broken = _write(tmp / "broken.conf", BROKEN_RULES)
    rules = _write(tmp / "p.conf", POLICIES_RULES)
    good_policy = _write(tmp / "good" / "policy.yaml", 'p: "role:member"\n')
    bad_policy = _write(tmp / "bad" / "policy.yaml", 'p: "role:member or or"\n')
    _write(tmp / "bad_dir" / "policy.yaml", 'p: "role:member"\n')
    _write(tmp / "bad_dir" / "policy.d" / "10.yaml", 'p: "role:member or or"\n')
    common = ["--name-collation", "binary"]
    policies = ["--rules-format", "policies", "--rules", rules]
    for command, tail in (
        ("explain", ["--roles", "member", "x"]),
        ("matrix", ["--roles-sets", "member"]),
    ):
        assert _main([command, *common, "--rules", PRODUCTION, *tail], capsys) == 0
        assert _main([command, *common, "--rules", broken, *tail], capsys) == 1
        assert (
            _main([command, *common, *policies, "--policy-file", good_policy, *tail], capsys) == 0
        )
        assert _main([command, *common, *policies, "--policy-file", bad_policy, *tail], capsys) == 2
        dirs = ["--policy-file", tmp / "bad_dir" / "policy.yaml"]
        assert _main([command, *common, *policies, *dirs, *tail], capsys) == 2
        namespace = ["--policy-file", good_policy, "--policy-namespaces", "glance,no_such_ns"]
        assert _main([command, *common, *policies, *namespace, *tail], capsys) == 2
        assert _main([command, *common, "--no-such-flag", *tail], capsys) == 2


def _deployment(tmp: Path, extra: str = "") -> tuple[Path, Path]:
    paste = _write(
        tmp / "api-paste.ini",
        "[pipeline:main]\npipeline = authtoken propguard app\n\n"
        "[filter:authtoken]\npaste.filter_factory = keystonemiddleware.auth_token:filter_factory\n\n"
        "[filter:propguard]\npaste.filter_factory = propguard.middleware:filter_factory\n"
        f"rules_file = {PRODUCTION}\nname_collation = binary\n{extra}\n"
        "[app:app]\npaste.app_factory = glance.api.v2.router:API.factory\n",
    )
    conf = _write(tmp / "glance-api.conf", "[DEFAULT]\nimage_property_quota = -1\n")
    return paste, conf


def _check_statuses(tmp: Path, capsys) -> None:
    assert (
        _main(["check", "--paste-ini", tmp / "no.ini", "--config-file", tmp / "no.conf"], capsys)
        == 2
    )
    paste, conf = _deployment(tmp / "refused", "inject_properties = x:{nope}")
    assert _main(["check", "--paste-ini", paste, "--config-file", conf], capsys) == 1


def _injection_statuses(tmp: Path, capsys) -> None:
    paste, conf = _deployment(tmp, "inject_properties = x:{nope}")
    assert _main(["lint", "--paste-ini", paste, "--config-file", conf], capsys) == 2
    assert _main(["check", "--paste-ini", paste, "--config-file", conf], capsys) == 1


def _subprocess(argv: list, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "propguard.cli", *[str(a) for a in argv]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


@functools.cache
def _notify_stdin_runs() -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """``notify-filter --stdin`` without, then with, --name-collation (run once for both claims)."""
    from propguard.notifications import samples

    payload = samples.image_payload({"os_distro": "x"})
    line = json.dumps({"event_type": "image.update", "payload": payload}) + "\n"
    stdin = ["notify-filter", "--stdin", "--rules-file", PRODUCTION, "--roles", "member,reader"]
    without = _subprocess(stdin, line)
    with_it = _subprocess([*stdin, "--name-collation", "binary"], line + "not json\n" + line)
    return without, with_it


def _notify_stdin_statuses(tmp: Path, capsys) -> None:
    without, done = _notify_stdin_runs()
    assert without.returncode == 2 and "name_collation = auto" in without.stderr, without.stderr
    assert done.returncode == 1, done.stderr
    assert "line 2: message is not valid JSON" in done.stderr and "not json" not in done.stderr
    assert len(done.stdout.splitlines()) == 2  # the other lines are all written


def _serve_status(tmp: Path, capsys) -> None:
    conf = _write(
        tmp / "propguard.conf",
        f"[propguard]\nrules_file = {_write(tmp / 'broken.conf', BROKEN_RULES)}\n"
        "name_collation = binary\n[keystone_authtoken]\nauth_url = http://127.0.0.1:1\n",
    )
    done = _subprocess(
        [
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--bind",
            "127.0.0.1:0",
            "--config-file",
            conf,
        ]
    )
    assert done.returncode == 2, done.stderr
    assert "broken.conf:1:" in done.stderr and "PG104" in done.stderr, done.stderr


def _db_current_statuses(tmp: Path, capsys) -> None:
    connection = tmp / "relations.sqlite"
    assert _main(["db", "current", "--connection", connection], capsys) == 1
    assert _main(["db", "upgrade", "--connection", connection], capsys) == 0
    assert _main(["db", "current", "--connection", connection], capsys) == 0


@dataclass(frozen=True)
class ExitClaim:
    document: str
    says: str  # as written (whitespace aside)
    shown_by: Callable[[Path, pytest.CaptureFixture[str]], None]


EXIT_CLAIMS = [
    ExitClaim(
        "README.md",
        "it exits 0 when clean, 1 on findings at or above `--fail-on` (default `error`), 2 on a "
        "usage error",
        _lint_statuses,
    ),
    ExitClaim(
        "README.md",
        "Both exit 1 when the rules file does not load and 2 when the policy set cannot be used",
        _explain_matrix_statuses,
    ),
    ExitClaim(
        "docs/lint.md",
        "Exit codes: `0` nothing at or above `--fail-on` (default `error`), `1` findings at or "
        "above it, `2` usage error or an argument that gives nothing to lint",
        _lint_statuses,
    ),
    ExitClaim(
        "docs/lint.md",
        "is an error: exit 2, naming it",
        _lint_statuses,
    ),
    ExitClaim(
        "docs/lint.md",
        "`explain` and `matrix` exit `1` when the rules file does not load and `2` when the "
        "policy file, a file of its `policy_dirs` or a namespace cannot be used",
        _explain_matrix_statuses,
    ),
    ExitClaim(
        "docs/lint.md",
        'a bad value or an unknown name (with "did you mean") exits 2, as the filter would not '
        "start",
        _lint_option_statuses,
    ),
    ExitClaim(
        "docs/lint.md",
        "exit codes are lint's (0 clean, 1 findings at or above `--fail-on`, 2 a file that does "
        "not exist)",
        _check_statuses,
    ),
    ExitClaim(
        "docs/filter.md",
        "`propguard lint` exits 2 with the filter's own message; `propguard check` reports that "
        "message as PG409 (an error finding: exit 1)",
        _injection_statuses,
    ),
    ExitClaim(
        "docs/notifications.md",
        "it is required outside glance-api, where `auto` cannot know, and the command exits 2 "
        "without it",
        _notify_stdin_statuses,
    ),
    ExitClaim(
        "docs/notifications.md",
        "the other lines are all written, and the exit status is 1 at the end",
        _notify_stdin_statuses,
    ),
    ExitClaim(
        "docs/proxy.md",
        "stops `propguard serve` before it listens, with exit status 2 and the same "
        "`file:line:col: CODE message` as in glance-api",
        _serve_status,
    ),
    ExitClaim(
        "docs/relations.md", "exit 0 at the newest revision, 1 otherwise", _db_current_statuses
    ),
]

#: Exit statuses the documents state that other tests show (they need services):
#: (document, what it says, the test that shows it).
EXIT_CLAIMS_ELSEWHERE = [
    ("docs/demo.md", "the exit status is 1", "test_live_demo.py: a step not as expected"),
    (
        "docs/demo.md",
        "The exit status is 0 when every step answered as the rules say, 1 when one did not, 2 "
        "when a service could not start, 130 after Ctrl-C",
        "test_live_demo.py (2: a port taken; 130: SIGINT once Keystone is up)",
    ),
    (
        "docs/relations.md",
        "It refuses (exit 1, nothing marked, the reason on stderr)",
        "tests/unit/relations/test_relations_cli.py",
    ),
    (
        "docs/deployment.md",
        "SIGTERM: requests in flight finish (30 s at most), exit 0",
        "test_service_units.py: stopped with the unit's KillSignal, exit 0",
    ),
    (
        "docs/deployment.md",
        "SIGTERM: the batch in flight is finished and acknowledged, exit 0",
        "test_service_units.py",
    ),
    (
        "docs/deployment.md",
        "exits 0 on the KillSignal within TimeoutStopSec",
        "test_service_units.py",
    ),
    (
        "docs/notifications.md",
        "prefetched messages left to the broker; exit status 0",
        "test_notify_service.py: SIGTERM, exit 0 (SIGINT has the same handler in service.py)",
    ),
    (
        "docs/notifications.md",
        "the service and `--stdin` (exit 2)",
        "tests/unit/notifications/test_notify_shadow.py: test_stdin_and_service_refuse_a_dry_run, "
        "test_the_driver_refuses_a_dry_run",
    ),
    (
        "docs/releasing.md",
        "`scripts/gen_options_doc.py --check` exits 1 when `docs/options.md` would change",
        "tests/unit/test_options_doc.py",
    ),
]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _sentences(text: str) -> list[str]:
    """Sentences of paragraphs, list items and table rows (each its own), whitespace flattened."""
    units: list[str] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        starts_unit = not line.strip() or re.match(r"^\s*([|#]|[*-] |\d+\. )", line)
        if starts_unit and current:
            units.append(_flat(" ".join(current)))
            current = []
        if line.strip():
            current.append(line)
    return [s for unit in units for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`*(])", unit)]


@pytest.mark.parametrize(
    "claim", EXIT_CLAIMS, ids=lambda c: f"{Path(c.document).stem}:{c.says[:30]}"
)
def test_documented_exit_status(
    claim: ExitClaim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _flat(claim.says) in _flat((ROOT / claim.document).read_text(encoding="utf-8")), (
        f"{claim.document} no longer says: {claim.says}"
    )
    claim.shown_by(tmp_path, capsys)


def test_every_exit_status_sentence_is_checked() -> None:
    """A sentence stating an exit status that is neither in EXIT_CLAIMS nor listed fails,
    and so does a listed one no document says any more."""
    checked = {(c.document, _flat(c.says)) for c in EXIT_CLAIMS}
    checked |= {(document, _flat(says)) for document, says, _ in EXIT_CLAIMS_ELSEWHERE}
    states_a_status = re.compile(
        r"\bexit(s|ed)?\b.{0,80}?(?<![\w.])`?[0-9]{1,3}`?(?!\.\d|[\w%])", re.I
    )
    unchecked = []
    for path in DOCUMENTS:
        name = str(path.relative_to(ROOT))
        for sentence in _sentences(path.read_text(encoding="utf-8")):
            if not states_a_status.search(sentence):
                continue
            if any(doc == name and says in sentence for doc, says in checked):
                continue
            unchecked.append(f"{name}: {sentence.strip()[:160]}")
    assert not unchecked, "exit statuses stated but not checked:\n" + "\n".join(unchecked)
    for document, says, _ in EXIT_CLAIMS_ELSEWHERE:
        assert _flat(says) in _flat((ROOT / document).read_text(encoding="utf-8")), says
