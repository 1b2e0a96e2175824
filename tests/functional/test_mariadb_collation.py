"""List filters on a database whose collation ignores case (MariaDB/MySQL).

Glance matches ``?name=value`` property filters in SQL. With MariaDB's default
``utf8mb4_general_ci`` collation, ``?SECRET_key=abc`` also matches a stored
``secret_key``: a readable spelling of the name could then probe a hidden
property's value. propguard keeps only images whose readable property of
exactly the filtered name has the value asked, so the answer never depends on
the hidden value. Runs Glance 33 on the machine's real MariaDB.
"""

from __future__ import annotations

from glance_api import JSON_PATCH, RAW

from propguard.inprocess import InProcessGlance

RULES = """\
[^secret_]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""


def _create(glance: InProcessGlance, headers: dict, **props: str) -> str:
    body = {**RAW, **props}
    res = glance.request("POST", "/v2/images", headers=headers, json=body)
    assert res.status_int == 201, res.body
    return res.json["id"]


def _names(response) -> list[str]:
    assert response.status_int == 200, response.body
    return [image["name"] for image in response.json["images"]]


def test_case_variant_filter_is_no_oracle_on_mariadb(mariadb_url: str, guarded_glance) -> None:
    glance = guarded_glance(RULES, database_url=mariadb_url)
    try:
        admin = glance.headers(glance.user_token(["admin", "member", "reader"]))
        member = glance.headers(glance.user_token(["member", "reader"]))
        _create(glance, admin, name="licensed", secret_key="abc")
        _create(glance, member, name="tagged", colour="Blue")

        # Even for the admin, a variant spelling is not the property: MariaDB
        # matches it (see the native test below), propguard drops the image.
        # The exact name with a differently-cased value still matches, as the
        # collation does for readable properties.
        assert _names(glance.request("GET", "/v2/images?SECRET_KEY=abc", headers=admin)) == []
        assert _names(glance.request("GET", "/v2/images?secret_key=ABC", headers=admin)) == [
            "licensed"
        ]

        # The member: exact hidden name -> nothing; case variants -> nothing,
        # whatever the value, so the answer reveals nothing.
        for query in ("secret_key=abc", "SECRET_key=abc", "Secret_Key=abc", "SECRET_key=wrong"):
            assert _names(glance.request("GET", f"/v2/images?{query}", headers=member)) == [], query
        # Not even the body's bytes differ between a hidden match and none
        # (Glance's json.dumps spacing vs propguard's re-written page).
        hit = glance.request("GET", "/v2/images?SECRET_key=abc", headers=member).body
        miss = glance.request("GET", "/v2/images?SECRET_key=wrong", headers=member).body
        assert hit == miss.replace(b"wrong", b"abc")

        # Readable filters keep working, including the collation's case-insensitive value match.
        assert _names(glance.request("GET", "/v2/images?colour=Blue", headers=member)) == ["tagged"]
        assert _names(glance.request("GET", "/v2/images?colour=blue", headers=member)) == ["tagged"]
        assert _names(glance.request("GET", "/v2/images?colour=Red", headers=member)) == []
    finally:
        glance.stop()


def test_native_glance_on_mariadb_answers_case_variant_filters(
    mariadb_url: str, glance_factory
) -> None:
    """Glance alone: the case-variant filter is a value oracle on the hidden property."""
    glance = glance_factory(database_url=mariadb_url)
    try:
        admin = glance.headers(glance.user_token(["admin", "member", "reader"]))
        member = glance.headers(glance.user_token(["member", "reader"]))
        _create(glance, admin, name="licensed", secret_key="abc")
        assert _names(glance.request("GET", "/v2/images?SECRET_key=abc", headers=member)) == [
            "licensed"
        ]
        assert _names(glance.request("GET", "/v2/images?SECRET_key=wrong", headers=member)) == []
    finally:
        glance.stop()


def _page(glance: InProcessGlance, url: str, headers: dict) -> dict:
    response = glance.request("GET", url, headers=headers)
    assert response.status_int == 200, response.body
    return response.json


def test_paging_does_not_reveal_dropped_images_on_mariadb(mariadb_url: str, guarded_glance) -> None:
    """Reviewer's reproducer: ``?SECRET_key=abc&limit=1`` used to answer an empty
    page whose ``next`` named the hidden match; now the pages are those Glance
    would give if the hidden match did not exist.

    With ``name_collation = auto`` propguard decides ``SECRET_key`` as
    ``secret_key`` on MariaDB (hidden: no member can create the decoys, see
    test_name_collation.py); the exact-name post-filter and the page refill
    stay as defence in depth, and are shown here with names compared exactly
    (``name_collation = binary``, e.g. a schema changed to ``utf8mb4_bin``)."""
    glance = guarded_glance(RULES, database_url=mariadb_url, name_collation="binary")
    try:
        admin = glance.headers(glance.user_token(["admin", "member", "reader"]))
        member = glance.headers(glance.user_token(["member", "reader"]))
        # Two images the member may find by ``SECRET_key`` (its own, exact
        # spelling), and the hidden match, first in name order.
        first = _create(glance, member, name="b-decoy", SECRET_key="abc")
        second = _create(glance, member, name="c-decoy", SECRET_key="abc")
        victim = _create(glance, admin, name="a-licensed", secret_key="abc")
        query = "/v2/images?SECRET_key=abc&limit=1&sort=name%3Aasc"

        def walk() -> list[tuple[list[str], str | None]]:
            pages, url = [], query
            while url:
                body = _page(glance, url, member)
                assert victim not in str(body) and "licensed" not in str(body)
                pages.append(([i["id"] for i in body["images"]], body.get("next")))
                url = body.get("next")
                assert len(pages) < 5
            return pages

        seen = walk()
        assert seen == [
            ([first], f"{query}&marker={first}"),
            ([second], f"{query}&marker={second}"),
            ([], None),
        ]
        # The same walk when the hidden value does not match: identical.
        res = glance.request(
            "PATCH",
            f"/v2/images/{victim}",
            headers={**admin, "Content-Type": JSON_PATCH},
            body=b'[{"op": "replace", "path": "/secret_key", "value": "xyz"}]',
        )
        assert res.status_int == 200, res.body
        assert walk() == seen
    finally:
        glance.stop()
