"""propguard.glance.collation: property names folded as MySQL/MariaDB compare them.

No database here: the expectations are MariaDB 10.11's answers, measured with
``SELECT CONVERT(a USING cs) COLLATE c = CONVERT(b USING cs) COLLATE c``
(tests/functional/test_collation_tables.py checks the tables against a live
server).
"""

from __future__ import annotations

import random
import unicodedata
from importlib import resources

import pytest

from propguard.glance.collation import (
    BINARY,
    COLLATIONS,
    NameFolding,
    folding,
    folding_for_connection,
)

MYSQL = (
    "utf8mb3_general_ci",
    "utf8mb4_general_ci",
    "utf8mb4_unicode_ci",
    "utf8mb4_unicode_520_ci",
    "utf8mb4_uca1400_ai_ci",
)
UCA = MYSQL[2:]

# (a, b, MariaDB's answer per collation in MYSQL order: "=" equal, "x" not).
EQUALITIES = [
    ("secret_key", "SECRET_KEY", "====="),
    ("föo", "foo", "====="),
    ("sécret", "secret", "====="),
    ("ｆｏｏ", "foo", "xx==="),
    ("foo ", "foo", "====="),
    (" foo", "foo", "xxxxx"),
    ("foo\t", "foo", "xxxxx"),
    ("foo\xa0", "foo", "xx==="),
    ("straße", "strasse", "xx==="),
    ("straße", "strase", "==xxx"),
    ("æ", "ae", "xxx=="),
    ("ﬁx", "fix", "xx==="),
    ("é", "e\u0301", "xx==="),
    ("e\u0301", "e", "xx==="),
    ("fo\u200bo", "foo", "xx==="),
    ("fo\xado", "foo", "xxxx="),
    ("fo\u200do", "foo", "xx==="),
    ("foo\x00", "foo", "xx==="),
    ("ı", "i", "==xxx"),
    ("İ", "i", "====="),
    ("x²", "x2", "xx==="),
    ("Ⅸ", "IX", "xx==="),
    ("\u212a", "k", "xx==="),
    ("ſ", "s", "====="),
    ("ς", "σ", "====="),
    ("а", "a", "xxxxx"),  # Cyrillic а
    ("a-b", "a_b", "xxxxx"),
    ("a＿b", "a_b", "xx==="),
    ("Đ", "D", "xxx=="),
    ("ø", "o", "xxx=="),
    ("ł", "l", "xxx=="),
    # Contractions (uca1400 only): l + middle dot, Thai prevowel + consonant.
    ("l\xb7", "l", "xxxx="),
    ("L\xb7x", "lx", "xxxx="),
    ("\u0e40\u0e01", "\u0e01\u0e40", "xxxx="),
]


@pytest.mark.parametrize(("a", "b", "answers"), EQUALITIES)
def test_each_collation_equates_what_mariadb_equates(a: str, b: str, answers: str) -> None:
    for collation, answer in zip(MYSQL, answers, strict=True):
        assert folding(collation).same_key(a, b) is (answer == "="), (collation, a, b)


@pytest.mark.parametrize(("a", "b", "answers"), EQUALITIES)
def test_mysql_any_equates_what_any_collation_equates(a: str, b: str, answers: str) -> None:
    assert folding("mysql_any").same_key(a, b) is ("=" in answers), (a, b)


def test_binary_is_identity() -> None:
    assert BINARY.is_identity
    assert folding("binary") is BINARY
    for name in ("secret_key", "SECRET_KEY", "secret_key ", "sécret\u0301", "\x00"):
        assert BINARY.fold(name) == name
        assert BINARY.stored_keys(name) == {name}
        assert BINARY.is_safe_new_name(name)
    assert not BINARY.same_key("secret_key", "SECRET_KEY")
    assert not folding("utf8mb3_general_ci").is_identity


def test_general_ci_folds_case_accents_and_trailing_spaces_to_one_key() -> None:
    general = folding("utf8mb3_general_ci")
    variants = [
        "secret_key",
        "SECRET_KEY",
        "sécret_key",
        "secret_key ",
        "Secret_Kéy  ",
        "ſecret_key",
    ]
    assert {general.fold(v) for v in variants} == {"secret_key"}
    assert general.stored_keys("SÉCRET_KEY") == {"secret_key"}
    assert general.fold("seсret_key") != "secret_key"  # Cyrillic с stays apart, as in MariaDB
    assert general.fold("straße") == general.fold("strase") == "strase"
    assert general.fold("ıd") == general.fold("ID") == "id"


def test_general_ci_key_is_a_spelling_of_the_same_name() -> None:
    rng = random.Random(20261129)
    general = folding("utf8mb3_general_ci")
    for _ in range(2000):
        name = "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(1, 12)))
        key = general.fold(name)
        assert general.fold(key) == key
        assert general.same_key(name, key)


def test_fullwidth_differs_under_general_ci_but_not_unicode_ci() -> None:
    assert not folding("utf8mb3_general_ci").same_key("ｓｅｃｒｅｔ＿ｋｅｙ", "secret_key")
    assert folding("utf8mb4_unicode_ci").same_key("ｓｅｃｒｅｔ＿ｋｅｙ", "secret_key")
    assert folding("mysql_any").same_key("ｓｅｃｒｅｔ＿ｋｅｙ", "secret_key")


def test_supplementary_characters() -> None:
    # utf8mb4_general_ci: every supplementary character weighs U+FFFD.
    mb4 = folding("utf8mb4_general_ci")
    assert mb4.same_key("a\U0001f600", "a\U00010400") and mb4.same_key("a\U0001f600", "a\ufffd")
    # unicode_ci: equal to each other, not to U+FFFD.
    assert folding("utf8mb4_unicode_ci").same_key("a\U0001f600", "a\U00020000")
    assert not folding("utf8mb4_unicode_ci").same_key("a\U0001f600", "a\ufffd")
    # uca1400: mathematical letters are letters.
    assert folding("utf8mb4_uca1400_ai_ci").same_key("\U0001d400bc", "abc")
    any_ = folding("mysql_any")
    assert not any_.is_safe_new_name("\U0001d400bc")
    assert any_.collides("abc", "\U0001d400bc")


def test_is_safe_new_name() -> None:
    for collation in ("binary", "utf8mb3_general_ci", "utf8mb4_general_ci"):
        assert folding(collation).is_safe_new_name("e\u0301\u200d\x00\ue000")
    for collation in (*UCA, "mysql_any"):
        fold = folding(collation)
        assert fold.is_safe_new_name("secret_key")
        assert fold.is_safe_new_name("sécret_key")  # precomposed é
        assert fold.is_safe_new_name("ｓｅｃｒｅｔ")
        for unsafe in ("se\u0301cret", "sec\u200dret", "secret\x00", "sec\ue000ret", "sec\u0378"):
            assert not fold.is_safe_new_name(unsafe), (collation, unsafe)
        # Characters the collation ignores, whatever their category.
        ignorable = [ch for ch, out in _map(collation).items() if out == "" and len(ch) == 1]
        assert ignorable and not any(fold.is_safe_new_name("a" + ch) for ch in ignorable)


def test_stored_keys_cover_decomposed_and_marked_stored_names() -> None:
    for collation in MYSQL:
        fold = folding(collation)
        stored = unicodedata.normalize("NFD", "sécret_key")
        # A stored name is folded as stored, marks and all: one key.
        assert fold.stored_keys(stored) == {fold.fold(stored)}
        if fold.uca:
            # The mark is ignorable: e + U+0301 is e, and é.
            assert fold.collides("secret_key", stored)
            assert fold.collides("sécret_key", stored)
        else:
            # general_ci: e + U+0301 is not é.
            assert not fold.collides("sécret_key", stored)


# (collation, stored, safe new name, MariaDB 10.11's unique key hit), measured through
# a unique index by tests/functional/test_collation_stored_marks.py.
STORED_MARKS = [
    ("utf8mb4_unicode_ci", "1\u036a", "1h", True),  # U+036A weighs as h ...
    ("utf8mb4_unicode_ci", "1\u036a", "1", False),  # ... not as an accent on 1
    ("utf8mb4_unicode_520_ci", "1\u036a", "1", False),
    ("utf8mb4_uca1400_ai_ci", "1\u036a", "1", False),
    ("utf8mb4_unicode_ci", "x\u0406\u0308_k", "x\u0406_k", True),
    ("utf8mb4_unicode_ci", "x\u0406\u0308_k", "x\u0407_k", False),  # not its NFC
    ("utf8mb4_unicode_520_ci", "x\u0406\u0308_k", "x\u0407_k", False),
    ("utf8mb4_unicode_ci", "\u0438\u0306", "\u0438", True),
    ("utf8mb4_unicode_ci", "\u0439", "\u0438", False),  # not its NFD without marks
    ("utf8mb4_uca1400_ai_ci", "\u0438\u0306", "\u0439", True),  # a contraction
    ("utf8mb4_uca1400_ai_ci", "\u0438\u0306", "\u0438", False),
    ("utf8mb4_uca1400_ai_ci", "1\u0956", "1", False),
]


@pytest.mark.parametrize(("collation", "stored", "new", "hit"), STORED_MARKS)
def test_collides_with_stored_marks_as_mariadb(collation, stored, new, hit) -> None:
    """Neither the NFC nor the mark-stripped spelling of a stored name is its key."""
    fold = folding(collation)
    assert fold.is_safe_new_name(new)
    assert fold.collides(new, stored) is hit


def test_mysql_any_factors_through_every_member() -> None:
    """Names one member equates fold alike under mysql_any (random BMP strings)."""
    rng = random.Random(14)
    any_ = folding("mysql_any")
    pool = [chr(cp) for cp in range(0x20, 0x250)] + list("ßıİſæﬁ\xb7\u0e40\u0e01\u0621\u0627ｓ")
    for _ in range(3000):
        if rng.random() < 0.5:
            name = "".join(rng.choice(pool) for _ in range(rng.randrange(1, 10)))
        else:
            name = "".join(chr(rng.randrange(0x20, 0xD800)) for _ in range(rng.randrange(1, 6)))
        key = any_.fold(name)
        for member in MYSQL:
            assert any_.fold(folding(member).fold(name)) == key, (member, name)


def test_mysql_any_keeps_distinct_what_every_member_keeps_distinct() -> None:
    any_ = folding("mysql_any")
    for a, b in [("secret_key", "secret-key"), ("a", "а"), ("secret", "secrets"), ("ab", "ba")]:
        assert not any_.same_key(a, b)
    assert any_.same_key("ssh", "sh")  # ß = s (general_ci) and ß = ss (UCA): s-runs are one


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "binary"),
        ("sqlite:///x", "binary"),
        ("sqlite://", "binary"),
        ("postgresql+psycopg2://glance:pw@db/glance", "binary"),
        ("postgresql://db/glance", "binary"),
        ("mysql+pymysql://glance:pw@db/glance?charset=utf8", "utf8mb3_general_ci"),
        ("mysql://db/glance", "utf8mb3_general_ci"),
        ("mariadb://glance@db/glance", "utf8mb3_general_ci"),
        ("mariadb+mariadbconnector://glance@db/glance", "utf8mb3_general_ci"),
    ],
)
def test_folding_for_connection(url: str | None, expected: str) -> None:
    assert folding_for_connection(url).name == expected


def test_unknown_names_are_errors() -> None:
    with pytest.raises(ValueError, match="dialect 'oracle'"):
        folding_for_connection("oracle://db")
    with pytest.raises(ValueError, match="unknown collation"):
        folding("utf8mb4_0900_ai_ci")
    assert folding("utf8_general_ci") is folding("utf8mb3_general_ci")
    assert folding("utf8mb3_uca1400_ai_ci") is folding("utf8mb4_uca1400_ai_ci")
    assert folding("UTF8MB4_UNICODE_CI") is folding("utf8mb4_unicode_ci")


def test_foldings_are_frozen_and_compare_by_name() -> None:
    general = folding("utf8mb3_general_ci")
    with pytest.raises(AttributeError):
        general.name = "binary"  # type: ignore[misc]
    assert general == NameFolding.from_table(_table("utf8mb3_general_ci"))
    assert hash(general) == hash(NameFolding("utf8mb3_general_ci"))


def test_shipped_tables_are_small() -> None:
    directory = resources.files("propguard.glance").joinpath("collations")
    sizes = {c: directory.joinpath(f"{c}.json").read_bytes() for c in COLLATIONS if c != "binary"}
    assert all(len(data) < 1_000_000 for data in sizes.values()), {
        k: len(v) for k, v in sizes.items()
    }


def _table(collation: str) -> dict:
    import json

    path = resources.files("propguard.glance").joinpath("collations", f"{collation}.json")
    return json.loads(path.read_text("ascii"))


def _map(collation: str) -> dict[str, str]:
    return _table(collation)["map"]
