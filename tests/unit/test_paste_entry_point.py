"""The filter loads through paste.deploy as glance-api would load it."""

from __future__ import annotations

from pathlib import Path

import pytest
from paste.deploy import loadapp, loadfilter

from propguard.middleware import PropertyProtectionFilter
from propguard.rules import RulesError

RULES = "[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n"


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"downstream"]


def app_factory(global_conf, **local_conf):
    return _app


@pytest.mark.parametrize(
    "spec",
    ["use = egg:propguard#propguard", "paste.filter_factory = propguard.middleware:filter_factory"],
)
def test_filter_loads_from_paste_ini(tmp_path: Path, spec: str) -> None:
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    ini = tmp_path / "paste.ini"
    ini.write_text(
        f"[filter:propguard]\n{spec}\nrules_file = {rules}\nreload_on_sighup = false\n"
        "service_role_mode = union\nname_collation = binary\n"
    )
    factory = loadfilter(f"config:{ini}", name="propguard")
    filt = factory(_app)
    assert isinstance(filt, PropertyProtectionFilter)
    assert filt.options["service_role_mode"] == "union"
    assert filt.rules.current().sections[-1].pattern == ".*"


def test_pipeline_with_broken_rules_does_not_build(tmp_path: Path) -> None:
    rules = tmp_path / "rules.conf"
    rules.write_text("[.*]\ncreate = admin\nread = admin\nupdate = admin\n")
    ini = tmp_path / "paste.ini"
    ini.write_text(
        "[pipeline:main]\npipeline = propguard app\n"
        f"[filter:propguard]\nuse = egg:propguard#propguard\nrules_file = {rules}\n"
        f"[app:app]\npaste.app_factory = {__name__}:app_factory\n"
    )
    with pytest.raises(RulesError) as info:
        loadapp(f"config:{ini}", relative_to=str(tmp_path))
    assert f"{rules}:1:1: PG105" in str(info.value)
    assert "no 'delete' operation" in str(info.value)
