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
``--requests`` timed requests; medians are compared. Target: propguard
adds at most 5% over ``none``.
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
RULES = os.path.join(HERE, "data", "glance-property-protections.conf")
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
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            response = glance.request("GET", path, headers=member)
            times.append(time.perf_counter() - start)
            assert response.status_int == 200
        return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="repeat the three pipelines")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    results: dict[str, list[float]] = {"none": [], "glance": [], "propguard": []}
    with tempfile.TemporaryDirectory(prefix="pg-bench-list-") as workdir:
        for round_ in range(args.rounds):
            for kind in results:
                results[kind] += run(
                    kind, args.images, args.requests, os.path.join(workdir, str(round_))
                )
    base = statistics.median(results["none"])
    print(
        f"GET /v2/images?limit={args.images}, {len(PROPERTIES)} properties per image, "
        f"median of {args.requests * args.rounds} requests per pipeline"
    )
    for kind, times in results.items():
        median = statistics.median(times)
        print(f"{kind:10} {median * 1e3:8.2f} ms   {100 * (median / base - 1):+6.1f}% vs none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
