"""What metrics and shadow rules add to the filter's own time on the 25-image list page
(issue 22: <= 5% together).

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--rounds N] [--single-process]``.

Same process, same run, the cases alternating within every round (a slow
spell of the machine hits them alike), best per-call time of each kept:

* ``bare``: the downstream app alone (returns the page bytes);
* ``with``: the filter with its metrics hooks (``propguard.metrics``), in
  prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set, as
  under ``propguard serve`` and a uWSGI glance-api: counters are mmapped files);
* ``without``: the same filter object with the hooks replaced by no-ops;
* ``shadow``: a filter with metrics and ``shadow_rules_file`` (the same rules
  again, so every decision is taken twice and nothing diverges: the cost
  without the cost of logging divergences).

The filter's own time is case - bare; the figure is (with - without) / (without - bare).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--number", type=int, default=50, help="calls per case per round")
    parser.add_argument(
        "--single-process", action="store_true", help="prometheus_client without multiprocess"
    )
    args = parser.parse_args(argv)
    if not args.single_process:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pg-bench-metrics-")
    sys.path.insert(0, HERE)
    import bench_filter

    from propguard import metrics

    bench_filter.quiet_third_parties()
    body = bench_filter.make_page(25)
    cases = bench_filter.propguard_cases("roles", body)
    shadowed = bench_filter.propguard_cases(
        "roles", body, shadow_rules_file=bench_filter.ROLES_FILE
    )
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
        "with": cases["warm"],
        "without": without,
        "shadow": shadowed["warm"],
    }
    best = {name: float("inf") for name in run}
    for _ in range(args.rounds):
        for name, fn in run.items():
            best[name] = min(best[name], bench_filter.per_call(fn, args.number))
    own_with = best["with"] - best["bare"]
    own_without = best["without"] - best["bare"]
    own_shadow = best["shadow"] - best["bare"]
    mode = "single process" if args.single_process else "multiprocess (mmapped files)"
    print(f"prometheus_client: {mode}; 25-image list page, roles rules; best of {args.rounds}")
    print(f"  bare app              {best['bare'] * 1e6:8.1f} us")
    print(f"  filter, no metrics    {own_without * 1e6:8.1f} us (own time)")
    print(f"  filter, with metrics  {own_with * 1e6:8.1f} us (own time)")
    print(f"  filter, metrics+shadow{own_shadow * 1e6:8.1f} us (own time)")
    print(f"  metrics add           {(own_with - own_without) / own_without * 100:8.2f} %")
    print(f"  metrics+shadow add    {(own_shadow - own_without) / own_without * 100:8.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
