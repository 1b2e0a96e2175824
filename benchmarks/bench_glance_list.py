"""``GET /v2/images?limit=100`` through a real Glance: propguard vs native protections vs none.

Run: ``.venv/bin/python benchmarks/bench_glance_list.py`` (after ``./scripts/test.sh``).

Three pipelines over the same data (100 images with 20 extra properties each,
created by an admin), all with keystonemiddleware ``auth_token``
(``AuthTokenFixture`` tokens) and Glance 33.0.0 in-process (sqlite, file
store), the caller a project member:

* ``none``:      ``authtoken context rootapp``, no property protections;
* ``glance``:    the same with Glance's own ``property_protection_file``;
* ``propguard``: ``authtoken propguard context rootapp``, Glance's off.

Both protected runs use Glance's own test rules (roles format). Glance's
configuration is process-global (one instance at a time), so the pipelines
run one after the other, ``--rounds`` times, each with a warm-up and then
``--requests`` timed requests; medians are compared. Because separate runs
are noisy, propguard's own share is also measured inside its pipeline, per
request: total time minus the time spent below the filter. Target: propguard
adds at most 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(
    HERE, os.pardir, "tests", "lint_fixtures", "glance", "property-protections.conf"
)
PROPERTIES = {
    **{f"x_owner_p{i}": f"owner value {i}" for i in range(8)},
    **{f"x_all_permitted_{i}": f"public value {i}" for i in range(6)},
    "x_none_read": "secret",
    "spl_read_prop": "spl",
    "foo": "admin only",
    "x_foo_bar": "foo",
    "x_case_insensitive": "ci",
    "hw_disk_bus": "virtio",
}


def run(kind: str, images: int, requests: int, workdir: str) -> list[float]:
    from propguard.inprocess import InProcessGlance

    kwargs: dict = {}
    if kind == "glance":
        kwargs["glance_property_protection_file"] = RULES
    elif kind == "propguard":
        kwargs["extra_filters"] = [
            (
                "propguard",
                "propguard.middleware:filter_factory",
                {"rules_file": RULES, "reload_on_sighup": "false"},
            )
        ]
    with InProcessGlance(os.path.join(workdir, kind), **kwargs) as glance:
        admin = glance.headers(glance.user_token(["admin", "member", "reader"]))
        member = glance.headers(glance.user_token(["member", "reader"]))
        for i in range(images):
            body = {"name": f"img-{i}", "disk_format": "raw", "container_format": "bare"}
            body.update(PROPERTIES)
            response = glance.request("POST", "/v2/images", headers=admin, json=body)
            assert response.status_int == 201, response.text
        path = f"/v2/images?limit={images}"
        for _ in range(5):
            response = glance.request("GET", path, headers=member)
            assert response.status_int == 200, response.text
        page = response.json["images"]
        assert len(page) == images
        if kind != "none":
            assert "foo" not in page[0] and "x_owner_p0" in page[0], sorted(page[0])
        downstream: list[float] = []
        if kind == "propguard":
            _time_downstream(glance.app, downstream)
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            response = glance.request("GET", path, headers=member)
            times.append(time.perf_counter() - start)
            assert response.status_int == 200
        if downstream:
            # Same requests, same run: what propguard itself added to each one.
            OWN_OVERHEAD.extend(
                (total - inner, inner)
                for total, inner in zip(times, downstream[-requests:], strict=True)
            )
        return times


#: (propguard's own time, Glance's time below it) per measured request.
OWN_OVERHEAD: list[tuple[float, float]] = []


def _time_downstream(app, sink: list[float]) -> None:
    """Wrap what the propguard filter calls, to time Glance below it per request."""
    from propguard.middleware import PropertyProtectionFilter

    seen = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        if isinstance(app, PropertyProtectionFilter):
            inner = app.application

            def timed(environ, start_response, inner=inner):
                start = time.perf_counter()
                result = inner(environ, start_response)
                sink.append(time.perf_counter() - start)
                return result

            app.application = timed
            return
        app = (
            getattr(app, "_app", None)
            or getattr(app, "app", None)
            or getattr(app, "application", None)
        )
    raise RuntimeError("propguard filter not found in the pipeline")


def progress(text: str) -> None:
    """A progress line on stderr (the results go to stdout)."""
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="repeat the three pipelines")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    logging.disable(logging.ERROR)
    results: dict[str, list[float]] = {"none": [], "glance": [], "propguard": []}
    with tempfile.TemporaryDirectory(prefix="pg-bench-list-") as workdir:
        kinds = list(results)
        for round_ in range(args.rounds):
            # Rotate the order every round: later instances in one process run
            # slower (Glance leaves state behind), which must not favour anyone.
            for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
                progress(
                    f"round {round_ + 1}/{args.rounds}: {kind:9} creating {args.images} images, "
                    f"then {args.requests} timed requests..."
                )
                start = time.perf_counter()
                times = run(kind, args.images, args.requests, os.path.join(workdir, str(round_)))
                results[kind] += times
                progress(
                    f"  done in {time.perf_counter() - start:.1f} s "
                    f"(median {statistics.median(times) * 1e3:.1f} ms per request)"
                )
    base = statistics.median(results["none"])
    print(
        f"GET /v2/images?limit={args.images}, {len(PROPERTIES)} properties per image, "
        f"median of {args.requests * args.rounds} requests per pipeline"
    )
    for kind, times in results.items():
        median = statistics.median(times)
        print(f"{kind:10} {median * 1e3:8.2f} ms   {100 * (median / base - 1):+6.1f}% vs none")
    own = statistics.median(o for o, _ in OWN_OVERHEAD)
    below = statistics.median(i for _, i in OWN_OVERHEAD)
    print(
        f"propguard's own time per request, measured inside the propguard pipeline: "
        f"{own * 1e3:.2f} ms over {below * 1e3:.2f} ms below it ({100 * own / below:+.1f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
