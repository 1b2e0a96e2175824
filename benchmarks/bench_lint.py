"""Benchmark: lint a generated 1000-section rules file, overlap analysis included.

    .venv/bin/python benchmarks/bench_lint.py [--sections 1000] [--repeat 3]

The file mixes the shapes real files use: prefix sections (``^ns_12_.*``),
exact names (``^prop_12$``), suffix sections (``.*_sfx12$``), character
classes, a few unanchored literals and regex sections that overlap, and a
final ``[.*]``. Target (issue #3): under 5 seconds.
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sections", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.conf")
        with open(path, "w") as handle:
            handle.write(generate(args.sections))
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            problems = lint_paths([path], LintOptions(rules_format="roles"))
            times.append(time.perf_counter() - start)
    codes: dict[str, int] = {}
    for p in problems:
        codes[p.code] = codes.get(p.code, 0) + 1
    best = min(times)
    print(f"sections={args.sections} findings={len(problems)} {codes}")
    print(f"lint time: best {best:.2f}s, runs {', '.join(f'{t:.2f}' for t in times)}")
    return 0 if best < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
