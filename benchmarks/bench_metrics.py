"""What metrics and shadow rules add to the filter's own time on the 25-image list page
(issue 22: <= 5% together).

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--rounds N] [--clock cpu] [--single-process]``.

The filter's own time is ``bench_filter.py``'s "propguard warm" figure for the
25-image page and Glance's test rules (roles): (filter + a downstream app that
returns the page bytes) minus (that app alone), warm caches. Same process,
same run, the cases alternating within every round (a slow spell of the
machine hits them alike; the order rotates each round), best per-call time of
each kept:

* ``bare``: the downstream app alone (returns the page bytes);
* ``without``: the filter with its metrics hooks replaced by no-ops, no
  shadow rules: the baseline;
* ``with``: the filter with its metrics hooks (``propguard.metrics``), in
  prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set, as
  under ``propguard serve`` and a uWSGI glance-api: counters are mmapped files);
* ``shadow``: metrics and ``shadow_rules_file`` = the enforced file with one
  section changed (``[x_none_update]`` may be updated by admin): every read
  decision is taken by both, none diverges on this page (the figure of the
  target);
* ``diverging``: metrics and a shadow file that changes ``[^x_owner_.*]``
  (read by admin only): two names of the page diverge, so every request also
  builds two ``shadow_divergence`` records (the decision log is disabled
  here, as in bench_filter.py: the cost of writing them is the logging's).

Figures: (case - without) / (without - bare), from the best times of each
case, and paired: that ratio within each round, its median and quartiles
over the rounds (less sensitive to one lucky sample on a loaded machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))

#: One section of Glance's test rules changed, as a rollout would try it.
QUIET_CHANGE = (
    "[x_none_update]\ncreate = admin,member\nread = admin,member\nupdate = !\n",
    "[x_none_update]\ncreate = admin,member\nread = admin,member\nupdate = admin\n",
)
DIVERGING_CHANGE = (
    "[^x_owner_.*]\ncreate = admin,member\nread = admin,member\n",
    "[^x_owner_.*]\ncreate = admin,member\nread = admin\n",
)


def changed_rules(source: str, change: tuple[str, str]) -> str:
    """A copy of ``source`` with one section changed (a temporary file)."""
    with open(source) as handle:
        text = handle.read()
    changed = text.replace(*change)
    assert changed != text, f"the rules file no longer has {change[0]!r}"
    fd, path = tempfile.mkstemp(prefix="pg-bench-shadow-", suffix=".conf")
    with os.fdopen(fd, "w") as handle:
        handle.write(changed)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--number", type=int, default=50, help="calls per case per round")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter; cpu: this process's CPU time (less sensitive to load)",
    )
    parser.add_argument(
        "--single-process", action="store_true", help="prometheus_client without multiprocess"
    )
    args = parser.parse_args(argv)
    if not args.single_process:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pg-bench-metrics-")
    sys.path.insert(0, HERE)
    import bench_filter

    from propguard import metrics

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def per_call(fn: Callable[[], object], number: int) -> float:
        start = clock()
        for _ in range(number):
            fn()
        return (clock() - start) / number

    bench_filter.quiet_third_parties()
    body = bench_filter.make_page(25)
    cases = bench_filter.propguard_cases("roles", body)
    quiet = changed_rules(bench_filter.ROLES_FILE, QUIET_CHANGE)
    diverging = changed_rules(bench_filter.ROLES_FILE, DIVERGING_CHANGE)
    try:
        shadowed = bench_filter.propguard_cases("roles", body, shadow_rules_file=quiet)
        diverged = bench_filter.propguard_cases("roles", body, shadow_rules_file=diverging)
    finally:
        os.unlink(quiet)
        os.unlink(diverging)
    real = (metrics.decided, metrics.note_hidden)

    def without() -> object:
        metrics.decided = lambda route, environ, response, refused: None
        metrics.note_hidden = lambda environ, count: None
        try:
            return cases["warm"]()
        finally:
            metrics.decided, metrics.note_hidden = real

    run = {
        "bare": cases["bare"],
        "without": without,
        "with": cases["warm"],
        "shadow": shadowed["warm"],
        "diverging": diverged["warm"],
    }
    names = list(run)
    samples: dict[str, list[float]] = {name: [] for name in run}
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(per_call(run[name], args.number))
    best = {name: min(times) for name, times in samples.items()}
    own = {name: best[name] - best["bare"] for name in names if name != "bare"}

    def paired(name: str) -> str:
        """Median and quartiles over the rounds of the figure within each round."""
        figures = sorted(
            (case - base) / (base - bare) * 100
            for case, base, bare in zip(samples[name], samples["without"], samples["bare"], strict=True)
        )
        n = len(figures)
        return (
            f"median {statistics.median(figures):6.2f} %, "
            f"quartiles {figures[n // 4]:6.2f} .. {figures[(3 * n) // 4]:6.2f} %"
        )
    base = own["without"]
    mode = "single process" if args.single_process else "multiprocess (mmapped files)"
    print(
        f"prometheus_client: {mode}; 25-image list page, roles rules; "
        f"best of {args.rounds} rounds of {args.number}, {args.clock} clock"
    )
    print(f"  bare app                       {best['bare'] * 1e6:8.1f} us")
    print(f"  filter, no metrics, no shadow  {base * 1e6:8.1f} us (own time)")
    print(f"  filter, metrics                {own['with'] * 1e6:8.1f} us (own time)")
    print(f"  filter, metrics+shadow         {own['shadow'] * 1e6:8.1f} us (own time)")
    print(f"  filter, metrics+shadow, 2 div. {own['diverging'] * 1e6:8.1f} us (own time)")
    print(f"  metrics add                    {(own['with'] - base) / base * 100:8.2f} %")
    print(f"  metrics+shadow add             {(own['shadow'] - base) / base * 100:8.2f} %")
    print(f"  metrics+shadow, diverging add  {(own['diverging'] - base) / base * 100:8.2f} %")
    print("paired per round (the cases of one round against that round's baseline):")
    print(f"  metrics add                    {paired('with')}")
    print(f"  metrics+shadow add             {paired('shadow')}")
    print(f"  metrics+shadow, diverging add  {paired('diverging')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
