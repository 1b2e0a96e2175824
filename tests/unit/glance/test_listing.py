"""propguard.listing: refilling a property-filtered page without naming dropped images."""

from __future__ import annotations

import pytest
import webob
from oslo_config import cfg

from propguard.errors import ApiError
from propguard.glance.listing import PageLimits, next_link, refill_page, requested_page_size


def images(*names: str) -> list[dict]:
    return [{"id": f"id-{n}", "name": n} for n in names]


def keep(image: dict) -> bool:
    return not image["name"].startswith("drop")


class Glance:
    """Later pages of a listing, as Glance pages them after a marker."""

    def __init__(self, names: list[str]) -> None:
        self.all = images(*names)
        self.calls: list[tuple[str, int]] = []

    def fetch(self, marker: str, limit: int) -> tuple[list[dict], bool]:
        self.calls.append((marker, limit))
        ids = [i["id"] for i in self.all]
        start = ids.index(marker) + 1
        page = self.all[start : start + limit]
        return page, len(page) == limit and start + limit < len(self.all) + 1


def test_nothing_more_to_read_gives_a_short_page_without_next():
    glance = Glance(["a", "drop1"])
    page, marker = refill_page(glance.all[:2], False, 2, keep, glance.fetch, 100)
    assert [i["name"] for i in page] == ["a"]
    assert marker is None
    assert glance.calls == []


def test_page_is_filled_from_later_pages_and_next_names_a_kept_image():
    names = ["drop1", "a", "drop2", "drop3", "b", "c", "d"]
    glance = Glance(names)
    page, marker = refill_page(glance.all[:2], True, 2, keep, glance.fetch, 100)
    assert [i["name"] for i in page] == ["a", "b"]
    assert marker == "id-b"
    # Reads on after the last image Glance returned, growing the page size.
    assert glance.calls == [("id-a", 2), ("id-drop3", 8)]


def test_the_answer_is_the_same_as_without_the_dropped_images():
    with_dropped = Glance(["drop", "a", "b", "c"])
    without = Glance(["a", "b", "c"])
    assert refill_page(with_dropped.all[:2], True, 2, keep, with_dropped.fetch, 100) == (
        without.all[:2],
        "id-b",
    )


def test_fetch_size_is_capped():
    glance = Glance(["drop0"] + [f"drop{i}" for i in range(1, 60)] + ["a"])
    page, marker = refill_page(glance.all[:1], True, 1, keep, glance.fetch, 1000, max_fetch=16)
    assert [i["name"] for i in page] == ["a"]
    assert marker == "id-a"
    assert max(limit for _, limit in glance.calls) == 16


def test_scan_limit_with_nothing_kept_is_a_400_naming_no_image():
    glance = Glance([f"drop{i}" for i in range(50)])
    with pytest.raises(ApiError) as info:
        refill_page(glance.all[:1], True, 1, keep, glance.fetch, 10)
    assert info.value.status == 400
    assert "id-" not in info.value.message and "drop" not in info.value.message


def test_scan_limit_with_some_kept_gives_them_and_a_next_after_the_last():
    glance = Glance(["a"] + [f"drop{i}" for i in range(50)] + ["b"])
    page, marker = refill_page(glance.all[:2], True, 2, keep, glance.fetch, 10)
    assert [i["name"] for i in page] == ["a"]
    assert marker == "id-a"


def test_image_without_an_id_is_a_502():
    with pytest.raises(ApiError) as info:
        refill_page([{"name": "drop"}], True, 1, keep, lambda m, n: ([], False), 10)
    assert info.value.status == 502


def test_zero_page_size_reads_nothing():
    assert refill_page(images("drop"), True, 0, keep, None, 10) == ([], None)


def test_next_link_is_written_as_glances_serializer_writes_it():
    request = webob.Request.blank("/v2/images?marker=m0&colour=Blue&limit=2&colour=Red")
    assert next_link(request, "id-b") == "/v2/images?colour=Red&limit=2&marker=id-b"


@pytest.mark.parametrize(
    "query,expected", [("", 25), ("?limit=3", 3), ("?limit=5000", 1000), ("?limit=7&limit=9", 7)]
)
def test_requested_page_size(query, expected):
    assert requested_page_size(webob.Request.blank("/v2/images" + query)) == expected


def test_page_limits_come_from_propguards_options_not_the_global_config():
    """A proxy outside glance-api has no Glance options in cfg.CONF: the limits are
    propguard's own options (``limit_param_default``, ``api_limit_max``), Glance's defaults."""
    from propguard import opts

    conf = cfg.ConfigOpts()
    conf.register_opts(
        [cfg.IntOpt("limit_param_default", default=10), cfg.IntOpt("api_limit_max", default=50)]
    )
    conf([], default_config_files=[], default_config_dirs=[])
    values = opts.resolve({"rules_file": "/pp.conf"}, conf)
    assert (values["limit_param_default"], values["api_limit_max"]) == (25, 1000)
    values = opts.resolve({"limit_param_default": "10", "api_limit_max": "50"}, conf)
    limits = PageLimits(values["limit_param_default"], values["api_limit_max"])
    assert requested_page_size(webob.Request.blank("/v2/images"), limits) == 10
    assert requested_page_size(webob.Request.blank("/v2/images?limit=70"), limits) == 50
