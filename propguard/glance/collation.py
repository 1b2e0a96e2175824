"""Property names as the database compares them: one fold per collation.

Glance stores image properties in ``image_properties`` with a unique key
``(image_id, name)`` that also holds soft-deleted rows. On SQLite and
PostgreSQL names are compared byte for byte. On MySQL/MariaDB they are compared
by the column's collation, which equates names Python cannot fold generically:
case, accents, trailing spaces (PAD SPACE), ``ı`` = ``I`` and ``ß`` = ``s`` in
``*_general_ci``; ignorable characters (NUL, ZWJ), expansions (``ß`` = ``ss``,
``ﬁ`` = ``fi``) and contractions (``l·`` = ``l``) in the UCA collations. Glance's
migrations create the table with ``mysql_charset='utf8'``, so on MariaDB 10.x
the column is ``utf8mb3`` with collation ``utf8mb3_general_ci``.

:class:`NameFolding` answers "would the database treat these names as the same
key?" without a database: :meth:`NameFolding.fold` maps a name to a key, equal
keys <=> the same database key, from a table generated from the server's own
``WEIGHT_STRING`` of every code point (``scripts/gen_collation_tables.py``,
shipped in ``propguard/glance/collations/``). Nothing here imports Glance or
connects to a database; a table is read on first use and cached.

Exactness (measured against MariaDB 10.11 by
``tests/functional/test_collation_tables.py``):

* ``binary``: identity (SQLite, PostgreSQL). Not MySQL's ``*_bin``, which pad.
* ``utf8mb3_general_ci``, ``utf8mb4_general_ci``: exact. These collations are
  a per-character map with PAD SPACE; the fold is a spelling of the same key
  (``'Sécret_Key '`` -> ``'secret_key'``) and folding it again changes nothing.
  ``utf8mb3`` cannot store characters beyond the BMP (Glance answers 500
  whatever the name); they are left unchanged.
* ``utf8mb4_unicode_ci``, ``utf8mb4_unicode_520_ci``, ``utf8mb4_uca1400_ai_ci``
  (``uca`` tables): the fold applies expansions, ignorables and the
  two-character contractions found by the generator, and is exact on single
  characters and on those contractions. Longer contractions and some
  sequences of combining marks are not modelled, so for these collations a
  NEW name must pass :meth:`NameFolding.is_safe_new_name` (no combining marks,
  format, control, private-use or unassigned characters, nothing the
  collation ignores). A STORED name, which may predate that rule and hold
  marks, is folded as stored: a safe new name ``n`` collides with a stored
  name ``s`` iff ``fold(n) in stored_keys(s)`` (:meth:`NameFolding.collides`),
  exact on stored names with combining marks too (measured, see
  :meth:`NameFolding.stored_keys`). The key is then not always a spelling of
  the name (``'เก'`` -> ``'กเ'``).
* ``mysql_any``: for a database whose collation is unknown. Names equal under
  ANY of the shipped MySQL collations fold alike. No one fold is exact for
  several collations (``ß`` is ``s`` in general_ci and ``ss`` in UCA), but
  one can contain them all: the generator computes their join over the BMP.
  Single characters equal in any member are merged (``ı`` = ``i`` from
  general_ci, ``ｆ`` = ``f`` from UCA), a character ignorable in any member
  is ignored, and the few relations merging cannot express become rewrite
  rules: ``ß`` = ``s`` and ``ß`` = ``ss`` make a run of ``s`` one ``s``;
  ``ŀ`` = ``l`` and ``ŀ`` = ``l·`` drop ``·`` after ``l``; ``ٵ`` = ``اء`` and
  ``ٵ`` = ``ءا`` let hamza commute with alef, waw, yeh and ``ۇ``; uca1400's
  Thai, Lao, New Tai Lue and Tai Viet contractions (``เก`` = ``กเ``) let a
  prevowel commute with a consonant. It is coarser than every member (more
  names collide: that is its purpose). It stops at the BMP because beyond it
  the join is useless: ``utf8mb4_general_ci`` weighs every supplementary
  character as ``U+FFFD`` and uca1400 equates ``𝐀`` with ``a``, so every
  letter with a mathematical twin would be one key. So every supplementary
  character folds to one key, a new name with one is not a safe new name,
  and :meth:`NameFolding.stored_keys` adds the keys of each member's
  spelling of a stored name (``𝐀bc`` collides with ``abc``).

``utf8mb3_unicode_ci``, ``utf8mb3_unicode_520_ci`` and ``utf8mb3_uca1400_ai_ci``
are accepted as the ``utf8mb4`` tables (identical weights and contractions on
the BMP, measured; ``utf8mb3`` holds nothing else).

:func:`folding_for_connection` maps Glance's ``[database] connection`` URL to
the fold of Glance's own schema: ``binary`` for SQLite and PostgreSQL,
``utf8mb3_general_ci`` for MySQL/MariaDB. A database converted to another
collation, or a server whose default ``utf8mb3`` collation is not
``utf8mb3_general_ci`` (MariaDB 11.5 and later can default to
``utf8mb3_uca1400_ai_ci``), needs the collation named explicitly, or
``mysql_any``; MySQL 8's ``*_0900_*`` collations are not shipped.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "BINARY",
    "COLLATIONS",
    "NameFolding",
    "folding",
    "folding_for_connection",
]

#: Every name :func:`folding` accepts.
COLLATIONS = (
    "binary",
    "utf8mb3_general_ci",
    "utf8mb4_general_ci",
    "utf8mb4_unicode_ci",
    "utf8mb4_unicode_520_ci",
    "utf8mb4_uca1400_ai_ci",
    "mysql_any",
)
#: Other names of a shipped table: ``utf8`` is ``utf8mb3`` (MariaDB < 10.6 says
#: ``utf8``), and the ``utf8mb3`` UCA collations weigh the BMP as ``utf8mb4``'s.
ALIASES = {
    "utf8_general_ci": "utf8mb3_general_ci",
    **{
        f"{prefix}_{uca}": f"utf8mb4_{uca}"
        for prefix in ("utf8", "utf8mb3")
        for uca in ("unicode_ci", "unicode_520_ci", "uca1400_ai_ci")
    },
}

#: Unicode categories refused in new names under UCA collations: combining
#: marks, format, control, surrogate, private-use and unassigned characters.
UNSAFE_CATEGORIES = frozenset({"Mn", "Mc", "Me", "Cf", "Cc", "Cs", "Co", "Cn"})
_BMP_MAX = 0xFFFF


@dataclass(frozen=True)
class NameFolding:
    """How one database collation compares property names.

    Build one with :func:`folding` (or use :data:`BINARY`); the fields are the
    parsed table (``translation``: ``str.translate`` table of the characters
    whose fold differs). Equality and hashing use :attr:`name` only.
    """

    name: str
    translation: Mapping[int, str] = field(default_factory=dict, compare=False, repr=False)
    pad_space: bool = field(default=False, compare=False, repr=False)
    uca: bool = field(default=False, compare=False, repr=False)
    supplementary: str | None = field(default=None, compare=False, repr=False)
    contractions: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    drop_after: Mapping[str, frozenset[str]] = field(
        default_factory=dict, compare=False, repr=False
    )
    collapse: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    commute: tuple[tuple[frozenset[str], frozenset[str]], ...] = field(
        default=(), compare=False, repr=False
    )
    members: tuple[str, ...] = field(default=(), compare=False, repr=False)
    _heads: frozenset[str] = field(default=frozenset(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_heads", frozenset(pair[0] for pair in self.contractions))

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> NameFolding:
        """A folding from a parsed ``collations/*.json`` table."""
        return cls(
            name=table["collation"],
            translation={ord(ch): out for ch, out in table["map"].items()},
            pad_space=table["pad_space"],
            uca=table["uca"],
            supplementary=table["supplementary"],
            contractions=dict(table["contractions"]),
            drop_after={k: frozenset(v) for k, v in table.get("drop_after", {}).items()},
            collapse=frozenset(table.get("collapse", "")),
            commute=tuple((frozenset(a), frozenset(b)) for a, b in table.get("commute", ())),
            members=tuple(table.get("members", ())),
        )

    @property
    def is_identity(self) -> bool:
        """True when names are compared exactly (``binary``)."""
        return not (self.translation or self.pad_space or self.supplementary or self.contractions)

    def fold(self, name: str) -> str:
        """The key of ``name``: equal keys <=> the database treats the names as one.

        For ``binary`` the name itself; for general_ci a spelling of the same
        key; for UCA collations see :meth:`collides` for stored names.
        """
        if self.is_identity:
            return name
        if self.supplementary is not None and not name.isascii():
            supp = self.supplementary
            name = "".join(supp if ord(ch) > _BMP_MAX else ch for ch in name)
        if self._heads and not self._heads.isdisjoint(name):
            key = self._fold_contracting(name)
        else:
            key = name.translate(self.translation)
        if self.drop_after or self.collapse or self.commute:
            key = self._rewrite(key)
        return key.rstrip(" ") if self.pad_space else key

    def same_key(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` fold alike (exact for binary and general_ci)."""
        return a == b or self.fold(a) == self.fold(b)

    def is_safe_new_name(self, name: str) -> bool:
        """Whether a new name avoids what the fold does not model (always True but for UCA).

        UCA collations (and ``mysql_any``): no combining mark, format, control,
        private-use or unassigned character, no character the collation
        ignores; ``mysql_any`` also refuses characters beyond the BMP.
        """
        if not self.uca:
            return True
        for ch in name:
            if unicodedata.category(ch) in UNSAFE_CATEGORIES:
                return False
            if ord(ch) > _BMP_MAX and self.name == "mysql_any":
                return False
            if self.translation.get(ord(ch)) == "":
                return False
        return True

    def stored_keys(self, name: str) -> frozenset[str]:
        """The keys a STORED name can collide under.

        ``{fold(name)}``; for ``mysql_any`` with supplementary characters
        also the key of each member's spelling of the name.

        A stored name may hold what new names may not (combining marks,
        written before the safe-new-name rule). Its fold as stored is exact
        for safe new names even then: MariaDB weighs such a name as written
        (``e`` + U+0301 is ``e`` in every shipped UCA collation, the mark
        being ignorable; uca1400's contraction ``и`` + U+0306 = ``й`` is in
        the table). The folds of its NFC and of its NFD without marks, once
        added here, only added collisions MariaDB does not have (U+036A
        weighs as ``h``, not as an accent; unicode_ci keeps ``І`` + U+0308
        apart from ``Ї``): a caller's ``add`` of a new property became a
        ``replace`` of the stored one. ``tests/functional/test_collation_stored_marks.py``
        checks ``collides`` against a unique index on MariaDB, both ways.
        """
        keys = {self.fold(name)}
        if self.members and any(ord(ch) > _BMP_MAX for ch in name):
            for member in self.members:
                keys.add(self.fold(folding(member).fold(name)))
        return frozenset(keys)

    def collides(self, new_name: str, stored_name: str) -> bool:
        """Whether creating ``new_name`` (a safe new name) hits a stored ``stored_name``."""
        return self.fold(new_name) in self.stored_keys(stored_name)

    # -- internals ---------------------------------------------------------------------------

    def _fold_contracting(self, name: str) -> str:
        # MariaDB's scanner: a contraction starting here wins over its first character.
        out: list[str] = []
        i, n = 0, len(name)
        while i < n:
            ch = name[i]
            if ch in self._heads and i + 1 < n:
                hit = self.contractions.get(name[i : i + 2])
                if hit is not None:
                    out.append(hit)
                    i += 2
                    continue
            out.append(self.translation.get(ord(ch), ch))
            i += 1
        return "".join(out)

    def _rewrite(self, key: str) -> str:
        # mysql_any's rules, in the generator's order: drop_after, collapse, commute.
        if self.drop_after:
            out: list[str] = []
            trigger: str | None = None
            for ch in key:
                if trigger is not None and ch in self.drop_after[trigger]:
                    continue
                trigger = ch if ch in self.drop_after else None
                out.append(ch)
            key = "".join(out)
        if self.collapse and not self.collapse.isdisjoint(key):
            out = []
            for ch in key:
                if not (out and ch == out[-1] and ch in self.collapse):
                    out.append(ch)
            key = "".join(out)
        for first, second in self.commute:
            if first.isdisjoint(key) or second.isdisjoint(key):
                continue
            out, run_a, run_b = [], [], []
            for ch in key:
                if ch in first:
                    run_a.append(ch)
                elif ch in second:
                    run_b.append(ch)
                else:
                    out += run_a + run_b + [ch]
                    run_a, run_b = [], []
            key = "".join(out + run_a + run_b)
        return key


#: Exact comparison: SQLite, PostgreSQL (and no database).
BINARY = NameFolding("binary")


def folding(collation: str) -> NameFolding:
    """The folding of a shipped collation (see :data:`COLLATIONS`); ValueError otherwise.

    The table is read on first use and kept: one object per collation.
    """
    name = collation.lower()
    name = ALIASES.get(name, name)
    if name == "binary":
        return BINARY
    if name not in COLLATIONS:
        raise ValueError(f"unknown collation {collation!r}; known: {', '.join(COLLATIONS)}")
    return _load(name)


@cache
def _load(name: str) -> NameFolding:
    text = resources.files(__package__).joinpath("collations", f"{name}.json").read_text("ascii")
    return NameFolding.from_table(json.loads(text))


def folding_for_connection(url: str | None) -> NameFolding:
    """The folding of Glance's schema on the database of a SQLAlchemy URL.

    ``None``, SQLite and PostgreSQL compare names exactly: :data:`BINARY`.
    MySQL and MariaDB, whatever the driver (``mysql+pymysql://``,
    ``mariadb://``): ``utf8mb3_general_ci``, the collation Glance's migrations
    give ``image_properties.name`` (``mysql_charset='utf8'``). Any other
    dialect is a ValueError: propguard does not guess.
    """
    if url is None:
        return BINARY
    dialect = url.split(":", 1)[0].split("+", 1)[0].strip().lower()
    if dialect in ("sqlite", "postgresql", "postgres"):
        return BINARY
    if dialect in ("mysql", "mariadb"):
        return folding("utf8mb3_general_ci")
    raise ValueError(f"no property-name collation known for database dialect {dialect!r}")
