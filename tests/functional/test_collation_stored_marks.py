"""Stored names with combining marks: ``collides`` agrees exactly with MariaDB.

Under the UCA collations a NEW name must be a safe new name (no combining
marks...), but a STORED name may predate that rule and hold anything. These
tests build a seeded set of such stored names (every BMP character with a
canonical decomposition, decomposed; every combining mark of the BMP on several
bases, first in a name, after ``key_``; marks stacked in any order, also on
precomposed letters; the three-character contractions of the DUCET;
realistic names with decomposed accents and extra marks) and, for each, the
safe new names that matter:

* a safe name MariaDB equates with it, when one exists: spelled from the
  stored name's own ``WEIGHT_STRING`` with safe characters of those weights
  (the collision propguard must find, or Glance answers 500 or a second
  spelling escapes the stored property's rules);
* its NFC and its NFD without combining marks, and their folds (the
  spellings a fold of those variants would equate with it).

For each pair a real unique index decides: a table shaped like Glance's
``image_properties`` (``UNIQUE (image_id, name)``) holds the stored name,
the new name is inserted for the same image, and a duplicate key is a
collision. ``NameFolding.collides`` must say exactly that, both ways: a miss
is a 500 or a protection bypass; a false collision turns the caller's
``add`` of a new property into a ``replace`` of the stored one.

Why the test exists: ``stored_keys`` used to add the folds of the stored
name's NFC and of its NFD without marks. On these pairs that only added
collisions MariaDB does not have (unicode_ci: stored ``'1'`` + U+036A, whose
mark weighs as ``h``, blocked a new ``'1'``; stored ``'І'`` + U+0308 blocked
``'Ї'``, which unicode_ci tells apart), and it found none the plain fold
missed. Putting either variant back fails ``test_collides_is_exactly_the_unique_index``.

Fails (never skips) under ``CI`` when MariaDB is unreachable (``tests/conftest.py``).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator

import pytest
import sqlalchemy
from glance_api import IMAGE, database, member, patch, stored_properties
from test_collation_tables import cursor  # noqa: F401  (fixture)

from propguard.glance.collation import NameFolding, folding

UCA = ("utf8mb4_unicode_ci", "utf8mb4_unicode_520_ci", "utf8mb4_uca1400_ai_ci")
MEMBERS = ("utf8mb3_general_ci", "utf8mb4_general_ci", *UCA)
BATCH = 300
_MARKS = frozenset({"Mn", "Me"})
MARKS = [chr(cp) for cp in range(0x300, 0x10000) if unicodedata.category(chr(cp)) in _MARKS]
#: Bases of several scripts; letters whose decomposition UCA collations treat differently.
BASES = [
    *"aeiouyAEnNcCsSkKlL_1",
    *"иИеЕуІαεωΑ",
    "\u0915",  # Devanagari ka
    "\u0627",  # Arabic alef
    "\u05d0",  # Hebrew alef
    "\u4e2d",
    "\u0e01",  # Thai ko kai
    "\u3042",
    "\u1100",  # Hangul jamo
    "\u10d0",
    "\u0531",
]
#: The DUCET's three-character contractions (all marks), which the fold does not model.
LONG_CONTRACTIONS = [
    "\u0cc6\u0cc2\u0cd5",
    "\u0dd9\u0dcf\u0dca",
    "\u0fb2\u0f71\u0f80",
    "\u0fb3\u0f71\u0f80",
]
#: Named cases (stored, new, unique key hit?) per collation, measured on MariaDB 10.11.
CASES = {
    "utf8mb4_unicode_ci": [
        ("se\u0301cret_key", "secret_key", True),  # the mark is ignorable
        ("se\u0301cret_key", "sécret_key", True),
        ("1\u036a", "1h", True),  # COMBINING LATIN SMALL LETTER H weighs as h
        ("1\u036a", "1", False),  # ... so it is no accent: the stripped spelling is another key
        ("x\u0406\u0308_k", "x\u0406_k", True),  # unicode_ci: І + U+0308 is І...
        ("x\u0406\u0308_k", "x\u0407_k", False),  # ... not its NFC Ї
        ("\u0439", "\u0438", False),  # й is a letter of its own
        ("\u0438\u0306", "\u0438", True),
    ],
    "utf8mb4_uca1400_ai_ci": [
        ("se\u0301cret_key", "secret_key", True),
        ("\u0438\u0306", "\u0439", True),  # uca1400: и + U+0306 is a contraction, й
        ("\u0438\u0306", "\u0438", False),
        ("\u0439", "\u0438", False),
        ("1\u0956", "1", False),  # a Devanagari vowel sign with a weight of its own
    ],
}


def stripped(name: str) -> str:
    """NFD without combining marks (what ``stored_keys`` used to add)."""
    nfd = unicodedata.normalize("NFD", name)
    return "".join(ch for ch in nfd if unicodedata.category(ch) not in _MARKS)


def stored_names(seed: int) -> list[str]:
    """Seeded stored names with combining marks (see the module docstring)."""
    rng = random.Random(seed)
    decomposable = [
        chr(cp)
        for cp in range(0xC0, 0x10000)
        if not 0xAC00 <= cp <= 0xD7A3
        and not 0xD800 <= cp <= 0xDFFF
        and unicodedata.normalize("NFD", chr(cp)) != chr(cp)
        and any(unicodedata.category(c) in _MARKS for c in unicodedata.normalize("NFD", chr(cp)))
    ]
    names: set[str] = set()
    for ch in decomposable:
        nfd = unicodedata.normalize("NFD", ch)
        names.update({nfd, f"x{nfd}_k"})
    for mark in MARKS:
        names.update(base + mark for base in rng.sample(BASES, 3))
        names.update({"key_" + mark, mark + "key"})
    for long in LONG_CONTRACTIONS:
        names.update({long, "\u0c95" + long, "x" + long + "y"})
    common = MARKS[:112]  # U+0300..U+036F: the marks Latin text carries
    for _ in range(3000):
        base = rng.choice(BASES + decomposable)
        marks = "".join(
            rng.choice(common if rng.random() < 0.6 else MARKS) for _ in range(rng.randrange(1, 4))
        )
        names.add(rng.choice(["", "os_", "x"]) + base + marks + rng.choice(["", "_id", "y"]))
    by_base: dict[str, list[str]] = {}
    for ch in decomposable:
        by_base.setdefault(unicodedata.normalize("NFD", ch)[0].lower(), []).append(ch)
    for _ in range(1500):
        out = []
        for ch in rng.choice(["secret_key", "hw_cpu_cores", "license_id", "owner_name"]):
            roll = rng.random()
            if roll < 0.2 and ch in by_base:
                ch = unicodedata.normalize("NFD", rng.choice(by_base[ch]))
            elif roll < 0.3:
                ch += rng.choice(MARKS)
            out.append(ch)
        names.add("".join(out))
    return sorted(names)


def _weights(cur, collation: str, names: list[str]) -> list[str]:
    expr = f"HEX(WEIGHT_STRING(CONVERT(%s USING utf8mb4) COLLATE {collation}))"
    out: list[str] = []
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        cur.execute("SELECT " + ", ".join([expr] * len(chunk)), chunk)
        out.extend(cur.fetchone())
    return out


class Speller:
    """Safe names of a given weight string, from the weights of single safe characters."""

    def __init__(self, cur, fold: NameFolding) -> None:
        cur.execute(
            "SELECT seq, HEX(WEIGHT_STRING(CONVERT(CHAR(seq USING utf32) USING utf8mb4) "
            f"COLLATE {fold.name})) FROM mysql.seq_0_to_65535 "
            "WHERE seq NOT BETWEEN 55296 AND 57343"
        )
        heads = {pair[0] for pair in fold.contractions}  # could contract with a neighbour
        self.by_units: dict[tuple[str, ...], str] = {}
        for cp, weight in cur.fetchall():
            ch = chr(cp)
            if weight and ch != " " and ch not in heads and fold.is_safe_new_name(ch):
                self.by_units.setdefault(_units(weight), ch)
        self.longest = max(len(units) for units in self.by_units)

    def spell(self, weight: str) -> str | None:
        units = _units(weight)
        best: list[str | None] = [""] + [None] * len(units)
        for i in range(len(units)):
            if best[i] is None:
                continue
            for length in range(1, min(self.longest, len(units) - i) + 1):
                ch = self.by_units.get(units[i : i + length])
                if ch is not None and best[i + length] is None:
                    best[i + length] = best[i] + ch
        return best[-1]


def _units(weight: str) -> tuple[str, ...]:
    return tuple(weight[i : i + 4] for i in range(0, len(weight), 4))


def candidate_pairs(cur, fold: NameFolding, names: list[str]) -> list[tuple[str, str, str]]:
    """(stored, new, why) for every stored name and the safe new names that matter."""
    speller = Speller(cur, fold)
    pairs = []
    for stored, weight in zip(names, _weights(cur, fold.name, names), strict=True):
        spellings = {
            "nfc": unicodedata.normalize("NFC", stored),
            "stripped": stripped(stored),
        }
        spelled = speller.spell(weight) if weight else None
        if spelled:
            spellings["same weight"] = spelled
        for why, name in list(spellings.items()):
            spellings[why + " folded"] = fold.fold(name)
        seen = set()
        for why, new in spellings.items():
            if new and new != stored and new not in seen and fold.is_safe_new_name(new):
                seen.add(new)
                pairs.append((stored, new, why))
    return pairs


def unique_key_hits(cur, collation: str, pairs: list[tuple[str, str]]) -> list[bool]:
    """Whether inserting ``new`` after ``stored`` for one image hits Glance's unique key."""
    cur.execute("DROP TEMPORARY TABLE IF EXISTS test.pg_image_properties")
    cur.execute(
        "CREATE TEMPORARY TABLE test.pg_image_properties ("
        " id INT AUTO_INCREMENT PRIMARY KEY, image_id VARCHAR(36) NOT NULL,"
        f" name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL,"
        " value TEXT, UNIQUE KEY ix_image_properties_image_id_name (image_id, name))"
    )
    rows = [(str(i), stored) for i, (stored, _) in enumerate(pairs)]
    cur.executemany("INSERT INTO test.pg_image_properties (image_id, name) VALUES (%s, %s)", rows)
    new = [(str(i), name) for i, (_, name) in enumerate(pairs)]
    cur.executemany(
        "INSERT IGNORE INTO test.pg_image_properties (image_id, name) VALUES (%s, %s)", new
    )
    cur.execute("SELECT image_id, COUNT(*) FROM test.pg_image_properties GROUP BY image_id")
    counts = {int(image): n for image, n in cur.fetchall()}
    cur.execute("DROP TEMPORARY TABLE test.pg_image_properties")
    assert set(counts) == set(range(len(pairs))) and set(counts.values()) <= {1, 2}
    return [counts[i] == 1 for i in range(len(pairs))]


NAMES = stored_names(seed=26)


@pytest.fixture(scope="module")
def measured(cursor) -> Iterator[dict[str, tuple[list[tuple[str, str, str]], list[bool]]]]:  # noqa: F811
    """Per UCA collation: the candidate pairs and the unique index's verdict on each."""
    out = {}
    for collation in UCA:
        pairs = candidate_pairs(cursor, folding(collation), NAMES)
        out[collation] = (pairs, unique_key_hits(cursor, collation, [p[:2] for p in pairs]))
    yield out


@pytest.mark.parametrize("collation", UCA)
def test_collides_is_exactly_the_unique_index(measured, collation: str) -> None:
    fold = folding(collation)
    pairs, hits = measured[collation]
    missed = [(s, n, why) for (s, n, why), hit in zip(pairs, hits, strict=True)
              if hit and not fold.collides(n, s)]  # fmt: skip
    false = [(s, n, why) for (s, n, why), hit in zip(pairs, hits, strict=True)
             if not hit and fold.collides(n, s)]  # fmt: skip
    assert not missed, f"{len(missed)} duplicate keys not foreseen, e.g. {ascii(missed[:4])}"
    assert not false, f"{len(false)} collisions MariaDB does not have, e.g. {ascii(false[:4])}"
    # Reach: the sample holds what each direction is about.
    spelled = sum(hit for (_, _, why), hit in zip(pairs, hits, strict=True) if "weight" in why)
    print(f"{collation}: {len(pairs)} pairs, {sum(hits)} hits, {spelled} spelled")
    assert spelled > 3000, f"only {spelled} stored names have a safe spelling MariaDB equates"
    stripped_apart = sum(
        not hit and fold.fold(n) == fold.fold(stripped(s))
        for (s, n, _), hit in zip(pairs, hits, strict=True)
    )
    print(f"{collation}: {stripped_apart} stripped spellings MariaDB tells apart")
    assert stripped_apart > 3000, (
        f"only {stripped_apart} mark-stripped spellings MariaDB tells apart"
    )


@pytest.mark.parametrize("collation", sorted(CASES))
def test_named_cases_on_a_unique_index(cursor, collation: str) -> None:  # noqa: F811
    """The cases the docstrings cite, each through the unique index."""
    cases = CASES[collation]
    hits = unique_key_hits(cursor, collation, [(s, n) for s, n, _ in cases])
    assert hits == [hit for _, _, hit in cases]
    fold = folding(collation)
    assert [fold.collides(n, s) for s, n, _ in cases] == hits


def test_mysql_any_covers_every_member_on_stored_marks(cursor, measured) -> None:  # noqa: F811
    """Whatever member collation the database has, mysql_any finds the stored name."""
    any_ = folding("mysql_any")
    pairs = sorted(
        {(s, n) for pairs, _ in measured.values() for s, n, _ in pairs if any_.is_safe_new_name(n)}
    )
    equal = [False] * len(pairs)
    for collation in MEMBERS:
        cs = collation.split("_", 1)[0]
        expr = f"CONVERT(%s USING {cs}) COLLATE {collation} = CONVERT(%s USING {cs}) COLLATE {collation}"
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            cursor.execute(
                "SELECT " + ", ".join([expr] * len(chunk)), [x for p in chunk for x in p]
            )
            for i, same in enumerate(cursor.fetchone()):
                equal[start + i] |= bool(same)
    missed = [
        p for p, same in zip(pairs, equal, strict=True) if same and not any_.collides(p[1], p[0])
    ]
    print(f"mysql_any: {len(pairs)} pairs, {sum(equal)} equal in a member")
    assert sum(equal) > 20000
    assert not missed, f"{len(missed)} misses, e.g. {ascii(missed[:4])}"


OPEN_RULES = """\
[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""


@pytest.mark.glance
def test_an_add_next_to_a_stored_name_with_marks_through_glance(guarded_glance, mariadb_url):
    """Glance on MariaDB, ``image_properties.name`` converted to ``utf8mb3_unicode_ci``.

    Names stored before the safe-new-name rule (written here straight into
    the table): ``'xІ'`` + U+0308 + ``'_k'`` and ``'colour'`` + U+036A. A
    member's ``add`` of the first one's NFC ``'xЇ_k'`` or of the second one
    without its mark, ``'colour'``, is another key in unicode_ci: a new
    property, the stored one unchanged (folding the NFC or the mark-stripped
    spelling too sent them as a ``replace`` of the stored property). An
    ``add`` of ``'xІ_k'``, the same key, replaces the stored one (no 500).
    """
    glance = guarded_glance(
        OPEN_RULES, database_url=mariadb_url, name_collation="utf8mb4_unicode_ci"
    )
    app = glance.webtest_app()
    token = member(glance)
    image_id = app.post_json("/v2/images", IMAGE, headers=glance.headers(token)).json["id"]
    stored, nfc, same = "x\u0406\u0308_k", "x\u0407_k", "x\u0406_k"
    marked = "colour\u036a"  # COMBINING LATIN SMALL LETTER H: weighs as h
    engine = database(glance)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "ALTER TABLE image_properties MODIFY name VARCHAR(255) "
                    "CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci NOT NULL"
                )
            )
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
                    "VALUES (:id, :name, 'old', NOW(), 0)"
                ),
                [{"id": image_id, "name": stored}, {"id": image_id, "name": marked}],
            )
    finally:
        engine.dispose()
    for name in (nfc, "colour"):
        patch(app, glance, image_id, [{"op": "add", "path": f"/{name}", "value": "new"}], token)
    assert stored_properties(glance, image_id) == {
        stored: "old",
        nfc: "new",
        marked: "old",
        "colour": "new",
    }
    patch(app, glance, image_id, [{"op": "add", "path": f"/{same}", "value": "same"}], token)
    assert stored_properties(glance, image_id)[stored] == "same"
    assert stored_properties(glance, image_id)[nfc] == "new"
