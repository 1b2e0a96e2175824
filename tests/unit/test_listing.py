"""propguard.listing: refilling a property-filtered page without naming dropped images."""

from __future__ import annotations

import pytest
import webob
from oslo_config import cfg

from propguard.errors import ApiError
from propguard.glance.listing import glance_limits, next_link, refill_page, requested_page_size


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
    conf = cfg.ConfigOpts()
    assert requested_page_size(webob.Request.blank("/v2/images" + query), conf) == expected


def test_glance_limits_come_from_glance_options_when_registered():
    conf = cfg.ConfigOpts()
    conf.register_opts(
        [cfg.IntOpt("limit_param_default", default=10), cfg.IntOpt("api_limit_max", default=50)]
    )
    conf([], default_config_files=[], default_config_dirs=[])
    assert glance_limits(conf) == (10, 50)
    assert glance_limits(cfg.ConfigOpts()) == (25, 1000)


def test_list_key_tables_match_glances_image_model():
    """propguard.glance's column/relationship tables are Glance 33's, written out
    so that the filter does not import Glance; checked here where Glance is installed."""
    from glance.db.sqlalchemy import models  # a test dependency: never skipped
    from sqlalchemy import inspect

    from propguard.glance.attributes import CORE_ATTRIBUTES, IMAGE_COLUMNS, IMAGE_RELATIONSHIPS

    mapper = inspect(models.Image)
    assert {c.key for c in mapper.column_attrs} == IMAGE_COLUMNS
    assert {r.key for r in mapper.relationships} == IMAGE_RELATIONSHIPS
    assert IMAGE_RELATIONSHIPS - {"members", "properties"} <= CORE_ATTRIBUTES
