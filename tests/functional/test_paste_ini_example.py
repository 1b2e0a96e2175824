"""``paste.ini.example`` is Glance 33's glance-api-paste.ini with propguard after authtoken.

Every composite of the file is loaded through paste.deploy, with Glance's own
``load_paste_app`` and the flavor glance-api would use, against the real
Glance 33 (its CONF, database and store set up by InProcessGlance); in each
authenticated pipeline propguard stands directly after ``auth_token`` and a
real request goes through it.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from glance.common import config as glance_config
from oslo_config import cfg

from propguard.middleware import PropertyProtectionFilter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "paste.ini.example"
RULES = ROOT / "policies" / "production.conf"

#: Glance 33.0.0's etc/glance-api-paste.ini pipelines (the [composite:api] keys).
GLANCE_PIPELINES = {
    "default": "cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context "
    "rootapp",
    "caching": "cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context "
    "cache rootapp",
    "cachemanagement": "cors http_proxy_to_wsgi versionnegotiation osprofiler "
    "unauthenticated-context cache cachemanage rootapp",
    "keystone": "cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken context rootapp",
    "keystone+caching": "cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken context "
    "cache rootapp",
    "keystone+cachemanagement": "cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken "
    "context cache cachemanage rootapp",
}
#: Every section Glance 33's file has, besides [composite:api].
GLANCE_SECTIONS = {
    "composite:glance-api",
    "composite:glance-api-caching",
    "composite:glance-api-cachemanagement",
    "composite:glance-api-keystone",
    "composite:glance-api-keystone+caching",
    "composite:glance-api-keystone+cachemanagement",
    "composite:api",
    "composite:rootapp",
    "app:apiversions",
    "app:apiv2app",
    "app:healthcheck",
    "filter:versionnegotiation",
    "filter:cache",
    "filter:cachemanage",
    "filter:context",
    "filter:unauthenticated-context",
    "filter:authtoken",
    "filter:gzip",
    "filter:osprofiler",
    "filter:cors",
    "filter:http_proxy_to_wsgi",
}


def _example() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(EXAMPLE)
    return parser


def test_holds_every_section_and_pipeline_of_glance_33():
    parser = _example()
    assert set(parser.sections()) == GLANCE_SECTIONS | {"filter:propguard"}
    api = parser["composite:api"]
    for flavor, pipeline in GLANCE_PIPELINES.items():
        expected = pipeline.replace(" authtoken ", " authtoken propguard ")
        assert api[flavor] == expected, flavor
    assert parser["filter:propguard"]["paste.filter_factory"] == (
        "propguard.middleware:filter_factory"
    )


def _copy_with_rules(tmp_path: Path) -> Path:
    """The example with rules_file pointing at a real file (it names /etc/glance/...)."""
    text = EXAMPLE.read_text()
    text, count = re.subn(r"(?m)^rules_file = .*$", f"rules_file = {RULES}", text)
    assert count == 1
    text = text.replace("/etc/glance/healthcheck_disable", str(tmp_path / "healthcheck_disable"))
    path = tmp_path / "glance-api-paste.ini"
    path.write_text(text)
    return path


def _chain(app) -> list[object]:
    """The WSGI objects from the outermost filter inwards, as far as they can be followed."""
    seen = []
    while app is not None and all(app is not s for s in seen) and len(seen) < 40:
        seen.append(app)
        app = (
            getattr(app, "application", None)
            or getattr(app, "app", None)
            or getattr(app, "_app", None)
        )
    return seen


def _auth_token_index(chain: list[object]) -> int:
    return next(
        i for i, a in enumerate(chain) if type(a).__module__.startswith("keystonemiddleware")
    )


@pytest.mark.glance
@pytest.mark.parametrize("flavor", list(GLANCE_PIPELINES))
def test_every_pipeline_loads_against_glance(flavor, glance_factory, tmp_path):
    glance = glance_factory(glance_options={"image_cache_dir": str(tmp_path / "cache")})
    ini = _copy_with_rules(tmp_path)
    chosen = None if flavor == "default" else flavor
    # glance-api reads [paste_deploy] flavor both to name the composite and in
    # glance.api:pipeline_factory to pick the pipeline of [composite:api].
    cfg.CONF.set_override("flavor", chosen, "paste_deploy")
    try:
        app = glance_config.load_paste_app("glance-api", conf_file=str(ini))
    finally:
        cfg.CONF.clear_override("flavor", "paste_deploy")
    # The composite is a URLMap (/healthcheck, /); the pipeline is what '/' maps to.
    pipeline = next(a for (_, path), a in app.applications if path in ("", "/"))
    chain = _chain(pipeline)
    guards = [a for a in chain if isinstance(a, PropertyProtectionFilter)]
    if "keystone" not in flavor:
        assert guards == []
        return
    (guard,) = guards
    assert chain.index(guard) == _auth_token_index(chain) + 1  # directly after authtoken
    assert guard.rules.current().document.path == str(RULES)
    # A request through the whole pipeline: propguard filters what Glance answers.
    admin = glance.headers(glance.user_token(["admin", "member", "reader"]))
    member = glance.headers(glance.user_token(["member", "reader"]))
    glance.app = app
    created = glance.request(
        "POST",
        "/v2/images",
        headers=admin,
        json={
            "name": "x",
            "disk_format": "raw",
            "container_format": "bare",
            "license_code": "LIC-1",
            "os_distro": "ubuntu",
        },
    )
    assert created.status_int == 201, created.text
    shown = glance.request("GET", f"/v2/images/{created.json['id']}", headers=member)
    assert shown.status_int == 200
    assert "license_code" not in shown.json and shown.json["os_distro"] == "ubuntu"
