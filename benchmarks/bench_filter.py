"""Filtering an image-list page: propguard's whole filter vs Glance's property checks.

Run: ``.venv/bin/python benchmarks/bench_filter.py`` (after ``./scripts/test.sh``
or ``pip install -e .[test]``; Glance 33.0.0 must be importable).

For each rules format (roles, policies; Glance's own test rule files) and page
size (25 images and 1000 images, 20 extra properties each) it measures, in the
same process:

* ``propguard``: the whole time the filter adds to a ``GET /v2/images``
  request: routing, credentials, JSON decoding of Glance's page, the read
  checks, removing hidden keys and JSON encoding. Measured as (filter + a
  downstream app that returns the page bytes) minus (that app alone).
  "warm" is the steady state (process-wide caches filled by earlier
  requests); "cold" clears the engine's caches and the decisions the view
  shares across requests before every request.
* ``glance``: only Glance's checks: one ``PropertyRules.check_property_rules``
  ``read`` call per property of every image (Glance really does at least two
  per property, see the reference §5), with a fresh RequestContext per page.
* ``json floor``: ``json`` round trip of the page (loads + dumps) with orjson,
  the least any filter that rewrites the page must spend; ``decode only`` is
  its ``loads`` half. ``best possible`` is glance / floor: the ratio a filter
  that cost nothing but the JSON round trip would reach.

The cases alternate within each round (so a slow spell of the machine hits
all of them alike) and the best per-call time of each is kept; ratios are
glance / propguard.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
#: Glance's own test rule files, kept once in the repository.
DATA = os.path.join(HERE, os.pardir, "tests", "lint_fixtures", "glance")
ROLES_FILE = os.path.join(DATA, "property-protections.conf")
POLICIES_FILE = os.path.join(DATA, "property-protections-policies.conf")
POLICY_YAML = os.path.join(DATA, "policy.yaml")

#: Property names spread over the sections of Glance's test rules (first,
#: middle, last section, catch-all), as a real page would be.
PROPERTY_NAMES = [
    "x_owner_billing",
    "x_owner_os",
    "spl_read_prop",
    "spl_create_prop",
    "spl_update_prop",
    "spl_delete_prop",
    "x_all_permitted_arch",
    "x_all_permitted_kernel",
    "x_none_read",
    "x_none_update",
    "x_none_delete",
    "x_case_insensitive",
    "x_foo_bar",
    "x_foo_matcher",
    "hw_disk_bus",
    "hw_vif_model",
    "os_distro",
    "os_version",
    "architecture",
    "hypervisor_type",
]


def make_page(images: int) -> bytes:
    page = {
        "images": [
            {
                "id": f"00000000-0000-0000-0000-{i:012d}",
                "name": f"image-{i}",
                "status": "active",
                "visibility": "shared",
                "protected": False,
                "os_hidden": False,
                "checksum": "d41d8cd98f00b204e9800998ecf8427e",
                "os_hash_algo": "sha512",
                "os_hash_value": "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce",
                "owner": "5ef70662f8b34079a6eddb8da9d75fe8",
                "size": 13287936,
                "virtual_size": 117440512,
                "min_ram": 0,
                "min_disk": 0,
                "disk_format": "qcow2",
                "container_format": "bare",
                "created_at": "2026-11-23T10:00:00Z",
                "updated_at": "2026-11-23T10:00:00Z",
                "tags": ["bench"],
                "self": f"/v2/images/00000000-0000-0000-0000-{i:012d}",
                "file": f"/v2/images/00000000-0000-0000-0000-{i:012d}/file",
                "schema": "/v2/schemas/image",
                **{name: f"value-{name}-{i}" for name in PROPERTY_NAMES},
            }
            for i in range(images)
        ],
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    return orjson.dumps(page)


def per_call(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def propguard_cases(
    rule_format: str, body: bytes, **extra: str
) -> dict[str, Callable[[], object]]:
    import webob

    from propguard.middleware import PropertyProtectionFilter
    from propguard.opts import resolve

    def upstream(environ, start_response):
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    options = resolve(
        {
            "rules_file": ROLES_FILE if rule_format == "roles" else POLICIES_FILE,
            "rule_format": rule_format,
            "policy_file": POLICY_YAML,
            "reload_on_sighup": "false",
            "reload_interval": "-1",
            "name_collation": "binary",
            **extra,
        }
    )
    filt = PropertyProtectionFilter(upstream, options)
    headers = {
        "X-Identity-Status": "Confirmed",
        "X-Roles": "member,reader",
        "X-User-Id": "u1",
        "X-Project-Id": "p1",
    }

    def call(app):
        request = webob.Request.blank("/v2/images", headers=headers)
        request.environ["keystone.token_auth"] = object()
        response = request.get_response(app)
        assert response.status_code == 200, response.status
        return response.body

    filtered = orjson.loads(call(filt))
    assert "x_none_read" not in filtered["images"][0], "the filter must hide x_none_read"
    engine = filt.rules.engine

    def cold():
        engine.section_index.cache_clear()
        engine._cached_allowed.cache_clear()
        filt.view._known = None  # the decisions the view shares across requests
        call(filt)

    return {
        "bare": lambda: call(upstream),
        "warm": lambda: call(filt),
        "cold": cold,
        "floor": lambda: orjson.dumps(orjson.loads(body)),
        "decode": lambda: orjson.loads(body),
    }


def glance_case(rule_format: str, body: bytes) -> Callable[[], object]:
    import glance.context
    from glance.common import config as glance_config
    from glance.common import property_utils
    from oslo_config import cfg

    conf = cfg.CONF
    glance_config.parse_args(args=[])
    workdir = tempfile.mkdtemp(prefix="pg-bench-")
    policy_copy = os.path.join(workdir, "policy.yaml")
    with open(POLICY_YAML) as src, open(policy_copy, "w") as dst:
        dst.write(src.read())
    from oslo_policy import opts as policy_opts

    policy_opts.set_defaults(conf)
    conf.set_override("policy_file", policy_copy, group="oslo_policy")
    conf.set_override(
        "property_protection_file", ROLES_FILE if rule_format == "roles" else POLICIES_FILE
    )
    conf.set_override("property_protection_rule_format", rule_format)
    property_utils.CONFIG.clear()
    rules = property_utils.PropertyRules()
    page = orjson.loads(body)["images"]
    names = [[k for k in image if k in PROPERTY_NAMES] for image in page]

    def run():
        context = glance.context.RequestContext(roles=["member", "reader"])
        check = rules.check_property_rules
        for image_names in names:
            for name in image_names:
                check(name, "read", context)

    return run


def measure(rule_format: str, images: int, rounds: int) -> dict[str, float]:
    """Best per-call time of each case; the cases alternate within every round,
    so a slow spell of the machine hits all of them alike."""
    body = make_page(images)
    cases = propguard_cases(rule_format, body)
    cases["glance"] = glance_case(rule_format, body)
    number = 20 if images == 25 else 2
    numbers = {name: number for name in cases}
    if rule_format == "policies":
        numbers["glance"] = max(1, number // 10)  # ~0.3 ms per check
    best = {name: float("inf") for name in cases}
    for round_ in range(rounds):
        for name, fn in cases.items():
            best[name] = min(best[name], per_call(fn, numbers[name]))
        if rounds > 3:
            progress(f"  round {round_ + 1}/{rounds}")
    return {
        "warm": best["warm"] - best["bare"],
        "cold": best["cold"] - best["bare"],
        "floor": best["floor"],
        "decode": best["decode"],
        "glance": best["glance"],
    }


def quiet_third_parties() -> None:
    """Keep Glance's and oslo's warnings and log lines out of the table (stdout)."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.CRITICAL)
    logging.disable(logging.ERROR)


def progress(text: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--sizes", default="25,1000", help="page sizes to measure, comma-separated (25,1000)"
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    quiet_third_parties()
    print(f"python {sys.version.split()[0]}; best of {args.rounds} interleaved rounds")
    print(
        f"{'format':9} {'images':>6} {'propguard warm':>15} {'propguard cold':>15} "
        f"{'json floor':>11} {'decode only':>11} {'glance checks':>14} {'ratio warm':>10} "
        f"{'ratio cold':>10} {'best possible':>13}"
    )
    for rule_format in ("roles", "policies"):
        for images in sizes:
            rounds = args.rounds if images == 25 or rule_format == "roles" else 3
            progress(f"measuring {rule_format}, {images} images ({rounds} rounds)...")
            r = measure(rule_format, images, rounds)
            print(
                f"{rule_format:9} {images:>6} {r['warm'] * 1e3:>12.3f} ms {r['cold'] * 1e3:>12.3f} ms "
                f"{r['floor'] * 1e3:>8.3f} ms {r['decode'] * 1e3:>8.3f} ms "
                f"{r['glance'] * 1e3:>11.3f} ms "
                f"{r['glance'] / r['warm']:>9.1f}x {r['glance'] / r['cold']:>9.1f}x "
                f"{r['glance'] / r['floor']:>12.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
