"""Benchmark: lint a generated 1000-section rules file, overlap analysis included.

    .venv/bin/python benchmarks/bench_lint.py [--sections 1000] [--repeat 3]

The file mixes the shapes real files use: prefix sections (``^ns_12_.*``),
exact names (``^prop_12$``), suffix sections (``.*_sfx12$``), character
classes, a few unanchored literals and regex sections that overlap, and a
final ``[.*]``. Target (issue #3): under 5 seconds; issue #13: under one second.
Also lints a policy whose check string is a 1,000-term ``or`` chain, used by
every operation of a policies-format file (quadratic before issue #13).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from propguard.lint import lint_paths  # noqa: E402
from propguard.lint.rules import LintOptions  # noqa: E402
from propguard.rules.loading import RulesOptions  # noqa: E402

ROLE_SETS = ["admin", "admin,member", "admin,reader,member", "@", "admin,service:nova"]


def generate(n: int) -> str:
    out = []
    for i in range(n - 1):
        kind = i % 10
        if kind in (0, 1, 2, 3):
            pattern = f"^ns_{i}_.*"
        elif kind in (4, 5):
            pattern = f"^prop_{i}$"
        elif kind == 6:
            pattern = f".*_sfx{i}$"
        elif kind == 7:
            pattern = f"^cls_{i}_[a-z0-9]+$"
        elif kind == 8:
            pattern = f"^grp_{i // 10}_(a|b|c)_{i}"
        else:
            pattern = f"^ns_{i - 9}_sub_.*"  # inside an earlier prefix: unreachable
        roles = ROLE_SETS[i % len(ROLE_SETS)]
        out.append(
            f"[{pattern}]\ncreate = {roles}\nread = {roles}\nupdate = {roles}\ndelete = admin\n"
        )
    out.append("[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n")
    return "\n".join(out)


def or_chain(folder: str, terms: int, variant: int = 0) -> list[str]:
    """A policies-format file whose four operations use one ``terms``-term ``or`` policy.

    ``variant`` changes the role names, so that no run reuses an earlier run's parse.
    """
    policy = os.path.join(folder, "policy.yaml")
    with open(policy, "w") as handle:
        roles = " or ".join(f"role:r{variant}_{i}" for i in range(terms))
        handle.write(f'"big": "{roles}"\n')
    rules = os.path.join(folder, "or.conf")
    with open(rules, "w") as handle:
        handle.write("[.*]\ncreate = big\nread = big\nupdate = big\ndelete = big\n")
    return [rules, policy]


def timed(make_paths, options: LintOptions, repeat: int) -> tuple[list, list[float], list[float]]:
    """Findings, wall times and CPU times of ``repeat`` runs (the first with cold caches).

    CPU time is what the wall time would be on an idle machine: on a busy one
    the wall time also counts other processes' turns.
    """
    times, cpu = [], []
    problems: list = []
    for run in range(repeat):
        paths = make_paths(run)
        start, start_cpu = time.perf_counter(), time.process_time()
        problems = lint_paths(paths, options)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return problems, times, cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sections", type=int, default=1000)
    parser.add_argument("--terms", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.conf")
        with open(path, "w") as handle:
            handle.write(generate(args.sections))
        print(f"linting {args.sections} sections, {args.repeat} times...", file=sys.stderr)
        problems, times, cpu = timed(
            lambda run: [path], LintOptions(rules=RulesOptions(rule_format="roles")), args.repeat
        )
        # Imports first (oslo.policy's check plugins, Glance's policy defaults: ~1 s once
        # per process), so that the timings below are lint's own work.
        warm = os.path.join(tmp, "warm")
        os.mkdir(warm)
        lint_paths(or_chain(warm, 3), LintOptions())
        print(f"linting a {args.terms}-term 'or' chain, {args.repeat} times...", file=sys.stderr)
        chain_problems, chain_times, chain_cpu = timed(
            lambda run: or_chain(tmp, args.terms, run + 1), LintOptions(), args.repeat
        )
    codes: dict[str, int] = {}
    for p in problems:
        codes[p.code] = codes.get(p.code, 0) + 1
    print(f"sections={args.sections} findings={len(problems)} {codes}")
    print(_times("lint time", times, cpu))
    print(f"or chain: terms={args.terms} findings={len(chain_problems)}")
    print(_times("lint time", chain_times, chain_cpu))
    return 0 if min(cpu) < 1.0 and min(chain_cpu) < 1.0 else 1


def _times(label: str, wall: list[float], cpu: list[float]) -> str:
    return (
        f"{label}: best {min(wall):.2f}s (cpu {min(cpu):.2f}s), first (cold) {wall[0]:.2f}s "
        f"(cpu {cpu[0]:.2f}s), runs {', '.join(f'{t:.2f}' for t in wall)}"
    )


if __name__ == "__main__":
    sys.exit(main())
