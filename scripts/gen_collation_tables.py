#!/usr/bin/env python3
"""Regenerate ``propguard/glance/collations/*.json`` from a running MariaDB.

The files are generated data, committed with the code; propguard reads them at
run time (:mod:`propguard.glance.collation`) and never connects to a database
for them. Regenerate them when MariaDB's collations change (a new server
version) or a collation is added to ``COLLATIONS``::

    .venv/bin/python scripts/gen_collation_tables.py --host 127.0.0.1 --port 3306 --user root
    .venv/bin/python scripts/gen_collation_tables.py --check   # exit 1 if the files would change

Method (about a minute on the project's machine):

1. **Weights.** For every code point (the BMP for ``utf8mb3``, all of Unicode
   but surrogates for ``utf8mb4``) the server computes
   ``WEIGHT_STRING(CONVERT(CHAR(cp USING utf32) USING cs) COLLATE c)``, read
   through MariaDB's ``seq_0_to_N`` sequence table (no table is created).
2. **Tokens.** A weight string is a sequence of 16-bit units; UCA's implicit
   weights (CJK, unassigned code points: a lead unit ``FBxx`` and a trail
   unit) are read as one token. The script checks that every weight string
   parses into tokens, so equal weight strings <=> equal token sequences.
3. **Representatives.** Each token gets one character whose whole weight is
   that token: lowercase ASCII first, then other ASCII, then lowercase, then
   the lowest code point. A character's fold is the concatenation of the
   representatives of its tokens (``'ß'`` -> ``'ss'`` under UCA, ``'s'`` under
   general_ci; ignorable characters -> ``''``). Only characters whose fold
   differs from themselves are written (``map``); when every supplementary
   character folds alike (``utf8mb4_general_ci``: all weigh ``U+FFFD``) that
   one fold is written once (``supplementary``).
4. **Contractions** (UCA: ``'l·'`` = ``'l'`` and Thai ``'เก'`` = ``'กเ'`` in
   uca1400). Weight strings of single characters cannot show them, so the
   script compares ``WEIGHT_STRING`` of long strings ``a b1 a b2 ...`` with
   the concatenated single-character weights, for every character ``a`` with
   an explicit weight and ``b`` among its 512 neighbours (by code point,
   windows overlapping by half) and among Latin-1, combining marks, general
   punctuation and CJK symbols; each mismatch is narrowed to the pair. Found
   two-character contractions go to ``contractions`` with their fold.
   Longer contractions (Tibetan, Myanmar, ...; all with combining marks) are
   not searched: :meth:`NameFolding.is_safe_new_name` refuses combining
   marks in new names for UCA collations.
   The search runs for ``uca`` collations only: those with ignorable or
   expanding characters (then the safe-new-name restriction applies). The
   others (``*_general_ci``) are per-character maps, which MariaDB implements
   without contractions.
5. **PAD SPACE** is measured (``'a' = 'a '``) and written as ``pad_space``.

``mysql_any.json`` is not a MariaDB collation: it is the smallest equivalence
containing the BMP equivalences of every shipped MySQL collation (their join),
so that names equal under any of them fold alike. See :func:`build_any` and
the module docstring of :mod:`propguard.glance.collation` for what it merges.

Output is deterministic (sorted keys, ASCII-escaped JSON, one entry a line):
the same server gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

COLLATIONS = (
    "utf8mb3_general_ci",
    "utf8mb4_general_ci",
    "utf8mb4_unicode_ci",
    "utf8mb4_unicode_520_ci",
    "utf8mb4_uca1400_ai_ci",
)
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO_ROOT / "propguard" / "glance" / "collations"
SPACE = 0x20
#: Tails tried with every head, whatever its script: Latin-1, combining marks,
#: general punctuation, CJK symbols and the kana voicing marks.
COMMON_TAILS = (
    (0x0000, 0x00FF),
    (0x0300, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x2000, 0x206F),
    (0x20D0, 0x20FF),
    (0x3000, 0x303F),
    (0x3099, 0x309A),
    (0xFE20, 0xFE2F),
)
WINDOW = 512
BATCH = 64

Tokens = tuple[str, ...]


def charset_of(collation: str) -> str:
    return collation.split("_", 1)[0]


def _weight_sql(collation: str, expr: str) -> str:
    return f"HEX(WEIGHT_STRING(CONVERT({expr} USING {charset_of(collation)}) COLLATE {collation}))"


def fetch_weights(cursor, collation: str) -> dict[int, str]:
    """Hex weight string of every code point the collation's charset can hold."""
    top = 0xFFFF if charset_of(collation) == "utf8mb3" else 0x10FFFF
    cursor.execute(
        f"SELECT seq, {_weight_sql(collation, 'CHAR(seq USING utf32)')} "
        f"FROM mysql.seq_0_to_{top} WHERE seq NOT BETWEEN 55296 AND 57343"
    )
    weights = {int(cp): hexw for cp, hexw in cursor.fetchall()}
    if len(weights) != top + 1 - 2048:
        raise SystemExit(f"{collation}: got {len(weights)} weights, expected {top + 1 - 2048}")
    return weights


def weights_of(cursor, collation: str, strings: Sequence[str]) -> list[str]:
    """Hex weight strings of several strings, computed by the server."""
    out: list[str] = []
    for start in range(0, len(strings), BATCH):
        chunk = strings[start : start + BATCH]
        cursor.execute("SELECT " + ", ".join(_weight_sql(collation, "%s") for _ in chunk), chunk)
        out.extend(cursor.fetchone())
    return out


def tokenizer(weights: dict[int, str]):
    """A function hex weight string -> tokens, checked to parse every weight."""
    units = {cp: [h[i : i + 4] for i in range(0, len(h), 4)] for cp, h in weights.items()}
    leads = {u[0] for u in units.values() if len(u) == 2 and u[0].startswith("FB")}

    def tokenize(hexw: str) -> Tokens:
        parts = [hexw[i : i + 4] for i in range(0, len(hexw), 4)]
        out, i = [], 0
        while i < len(parts):
            if parts[i] in leads:
                if i + 1 == len(parts):
                    raise ValueError(f"implicit weight lead {parts[i]} without trail in {hexw}")
                out.append(parts[i] + parts[i + 1])
                i += 2
            else:
                out.append(parts[i])
                i += 1
        return tuple(out)

    for cp, u in units.items():
        if len(u) == 1 and u[0] in leads:
            raise SystemExit(f"U+{cp:04X}: implicit-weight lead {u[0]} used as a weight of its own")
    return tokenize, leads


def _preference(cp: int) -> tuple[bool, bool, bool, int]:
    """Representative order: lowercase ASCII, other ASCII, BMP before the rest, lowercase, lowest."""
    return (cp > 0x7F, cp > 0xFFFF, not chr(cp).islower(), cp)


def representatives(tokens: dict[int, Tokens]) -> dict[str, str]:
    rep: dict[str, str] = {}
    for cp in sorted(tokens, key=_preference):
        if len(tokens[cp]) == 1:
            rep.setdefault(tokens[cp][0], chr(cp))
    missing = {t for seq in tokens.values() for t in seq} - rep.keys()
    if missing:
        raise SystemExit(
            f"tokens without a single-character representative: {sorted(missing)[:10]}"
        )
    return rep


def _ranges(ranges: Iterable[tuple[int, int]]) -> set[int]:
    return {cp for lo, hi in ranges for cp in range(lo, hi + 1)}


def find_contractions(
    cursor, collation: str, weights: dict[int, str], candidates: list[int]
) -> dict[str, str]:
    """Two-character strings whose weight is not the concatenation of their characters'."""
    found: dict[str, str] = {}
    common = sorted(_ranges(COMMON_TAILS) & set(candidates))
    groups: list[tuple[list[int], list[int]]] = []
    for start in range(0, max(len(candidates) - WINDOW // 2, 1), WINDOW // 2):
        window = candidates[start : start + WINDOW]
        groups.append((window, window))
    groups.append((candidates, common))
    for heads, tails in groups:
        tail_chars = [chr(b) for b in tails]
        tail_weights = [weights[b] for b in tails]
        for start in range(0, len(heads), BATCH):
            batch = heads[start : start + BATCH]
            strings = [chr(a) + chr(a).join(tail_chars) for a in batch]
            got = weights_of(cursor, collation, strings)
            for a, weight in zip(batch, got, strict=True):
                expected = weights[a] + weights[a].join(tail_weights)
                if weight == expected:
                    continue
                pairs = [chr(a) + chr(b) for b in tails] + [chr(b) + chr(a) for b in tails]
                for pair, w in zip(pairs, weights_of(cursor, collation, pairs), strict=True):
                    if w != weights[ord(pair[0])] + weights[ord(pair[1])]:
                        found[pair] = w
    return found


def pad_space(cursor, collation: str) -> bool:
    cs = charset_of(collation)
    cursor.execute(f"SELECT CONVERT('a' USING {cs}) COLLATE {collation} = CONVERT('a ' USING {cs})")
    return bool(cursor.fetchone()[0])


def build_table(cursor, collation: str, server: str) -> dict:
    weights = fetch_weights(cursor, collation)
    tokenize, leads = tokenizer(weights)
    tokens = {cp: tokenize(h) for cp, h in weights.items()}
    rep = representatives(tokens)
    if rep[tokens[SPACE][0]] != " " or len(tokens[SPACE]) != 1:
        raise SystemExit(f"{collation}: the space is not its own single-token representative")
    fold = {cp: "".join(rep[t] for t in seq) for cp, seq in tokens.items()}
    supplementary = {fold[cp] for cp in fold if cp > 0xFFFF}
    supp = supplementary.pop() if len(supplementary) == 1 else None
    mapping = {
        chr(cp): out
        for cp, out in fold.items()
        if out != chr(cp) and not (supp is not None and cp > 0xFFFF)
    }
    # Heads/tails: characters with an explicit weight (contractions are DUCET
    # entries; implicit weights and the one supplementary weight have none).
    candidates = [
        cp
        for cp, seq in sorted(tokens.items())
        if not any(t[:4] in leads for t in seq) and not (supp is not None and cp > 0xFFFF)
    ]
    # A collation with neither ignorables nor expansions is a per-character map
    # (MariaDB's *_general_ci code has no contractions): searched only for UCA.
    uca = any(len(seq) != 1 for seq in tokens.values())
    found = find_contractions(cursor, collation, weights, candidates) if uca else {}
    contractions = {pair: "".join(rep[t] for t in tokenize(w)) for pair, w in found.items()}
    return {
        "collation": collation,
        "charset": charset_of(collation),
        "server": server,
        "pad_space": pad_space(cursor, collation),
        "uca": uca,
        "max_code_point": max(weights),
        "supplementary": supp,
        "map": mapping,
        "contractions": contractions,
    }


# -- mysql_any: the join of the shipped collations --------------------------------------------


def _apply(table: dict, text: str) -> str:
    """One shipped table's fold of a BMP string, without PAD (the runtime algorithm)."""
    mapping, contractions = table["map"], table["contractions"]
    out, i = [], 0
    while i < len(text):
        if text[i : i + 2] in contractions:
            out.append(contractions[text[i : i + 2]])
            i += 2
        else:
            out.append(mapping.get(text[i], text[i]))
            i += 1
    return "".join(out)


class _Join:
    """The join of several collations over the BMP, as a map plus rewrite rules.

    Characters equal in any member are merged (union-find; ``""`` is the class
    of ignorable characters and wins every merge). A relation between a class
    and a longer string defines the class (``æ`` -> ``ae``) unless the class
    is already defined otherwise or occurs in the string; those conflicts
    become rules (see :func:`build_any`).
    """

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.expansions: dict[str, str] = {}
        self.drop_after: dict[str, set[str]] = {}
        self.collapse: set[str] = set()
        self.commute: set[tuple[str, str]] = set()
        self._rewriter = None

    def find(self, x: str) -> str:
        while self.parent.get(x, x) != x:
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> list[tuple[str, str]]:
        """Merge two classes; returns relations between their definitions to re-check."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return []
        keep, drop = sorted((a, b), key=lambda c: (c != "", _preference(ord(c)) if c else ()))
        self.parent[drop] = keep
        moved = self.expansions.pop(drop, None)
        if moved is None:
            return []
        if keep == "":
            return [(moved, "")]
        if keep in self.expansions:
            return [(moved, self.expansions[keep])]
        self.expansions[keep] = moved
        return []

    def fold(self, text: str, depth: int = 0) -> str:
        out = []
        for ch in text:
            r = self.find(ch)
            e = self.expansions.get(r)
            if e is not None and depth < 16:
                out.append(self.fold(e, depth + 1))
            else:
                out.append(r)
        return self.rewrite("".join(out))

    def rewrite(self, key: str) -> str:
        if self._rewriter is None:
            from propguard.glance.collation import NameFolding

            drop: dict[str, set[str]] = {}
            for k, v in self.drop_after.items():
                drop.setdefault(self.find(k), set()).update(self.find(c) for c in v)
            self._rewriter = NameFolding(
                "join",
                drop_after={k: frozenset(v) for k, v in drop.items()},
                collapse=frozenset(self.find(c) for c in self.collapse),
                commute=self.commute_groups(),
            )
        return self._rewriter._rewrite(key)

    def commute_groups(self) -> tuple[tuple[frozenset[str], frozenset[str]], ...]:
        """Commuting pairs as groups ``(as, bs)``: every ``a`` commutes with every ``b``.

        A connected component of the commutation graph must be bipartite; it is
        completed to all pairs across its two sides (coarser, so still safe).
        """
        partners: dict[str, set[str]] = {}
        for x, y in self.commute:
            x, y = self.find(x), self.find(y)
            if x and y and x != y:
                partners.setdefault(x, set()).add(y)
                partners.setdefault(y, set()).add(x)
        groups, side_of = [], {}
        for start in sorted(partners):
            if start in side_of:
                continue
            side_of[start] = 0
            sides: tuple[set[str], set[str]] = ({start}, set())
            queue = [start]
            while queue:
                x = queue.pop()
                for y in partners[x]:
                    if y not in side_of:
                        side_of[y] = 1 - side_of[x]
                        sides[side_of[y]].add(y)
                        queue.append(y)
                    elif side_of[y] == side_of[x]:
                        raise SystemExit(
                            f"mysql_any: {x!r} and {y!r} commute with each other's partners"
                        )
            first, second = sorted(sides, key=lambda g: min(map(_preference, map(ord, g))))
            groups.append((frozenset(first), frozenset(second)))
        return tuple(groups)

    def relate(self, lhs: str, rhs: str) -> list[tuple[str, str]]:
        """Make ``lhs`` and ``rhs`` fold alike; returns relations to re-check."""
        a, b = self.fold(lhs), self.fold(rhs)
        if a == b:
            return []
        self._rewriter = None
        if len(a) > len(b):
            a, b = b, a
        if len(a) <= 1 and len(b) <= 1:
            todo = self.union(a, b)
        elif a == "":
            todo = [(c, "") for c in b]  # ignorable in one member: each character is
        elif len(a) == 1 and a not in b and a not in self.expansions:
            self.expansions[a] = b
            todo = []
        elif len(set(a)) == 1 and set(a) == set(b):
            self.collapse.add(a[0])  # s = ss
            todo = []
        elif len(a) == 1 and b.startswith(a):
            self.drop_after.setdefault(a, set()).update(b[1:])  # l = l·
            todo = []
        elif len(a) == 2 and b == a[::-1]:
            self.commute.add((a[0], a[1]))  # xy = yx
            todo = []
        else:
            raise SystemExit(f"mysql_any: no rule makes {a!r} = {b!r} (from {lhs!r} = {rhs!r})")
        self._rewriter = None
        if self.fold(lhs) != self.fold(rhs) and not todo:
            raise SystemExit(f"mysql_any: the rule for {a!r} = {b!r} does not make them equal")
        return todo


def build_any(tables: list[dict]) -> dict:
    """One fold under which names equal in ANY shipped collation are equal (BMP).

    Relations: every character with its fold in every member, and every
    contraction with its fold in every member (in a member without it, the
    concatenation of its characters' folds). They are applied until all hold;
    the conflicts merging cannot express become rules, applied after the map:

    * ``drop_after``: ``{x: ys}`` drops characters of ``ys`` that follow ``x``
      (or a dropped one): ``ŀ`` = ``l`` and ``ŀ`` = ``l·``;
    * ``collapse``: a run of one of these characters is one (``ß`` = ``s`` and
      ``ß`` = ``ss``);
    * ``commute``: ``[[as, bs], ...]``: a run of characters from ``as`` and
      ``bs`` becomes its ``as`` then its ``bs`` (``ٵ`` = ``اء`` and ``ٵ`` =
      ``ءا``; Thai ``เก`` = ``กเ``).

    The script stops on any other shape of conflict.
    """
    join = _Join()
    relations: list[tuple[str, str]] = []
    for table in tables:
        for ch, out in table["map"].items():
            if max(map(ord, ch + out)) <= 0xFFFF:
                relations.append((ch, out))
        for pair in table["contractions"]:
            if max(map(ord, pair)) <= 0xFFFF:
                relations.extend((pair, _apply(member, pair)) for member in tables)
    for _ in range(10):  # until all hold at once, not only each when it was applied
        # Shortest first: characters merge before expansions, expansions before contractions.
        todo = sorted(relations, key=lambda r: (-len(r[0]), -len(r[1]), r), reverse=False)
        while todo:
            lhs, rhs = todo.pop()
            todo.extend(join.relate(lhs, rhs))
        if all(join.fold(lhs) == join.fold(rhs) for lhs, rhs in relations):
            break
    else:
        raise SystemExit("mysql_any: the relations do not settle")

    mapping: dict[str, str] = {}
    for cp in range(0x10000):
        if not 0xD800 <= cp <= 0xDFFF:
            ch = chr(cp)
            out = "".join(join.fold(c) for c in ch)
            if out != ch:
                mapping[ch] = out
    return {
        "collation": "mysql_any",
        "charset": "utf8mb4",
        "server": tables[0]["server"],
        "members": [t["collation"] for t in tables],
        "pad_space": all(t["pad_space"] for t in tables),
        "uca": True,
        "max_code_point": 0xFFFF,
        "supplementary": join.fold("\ufffd"),
        "map": mapping,
        "contractions": {},
        "drop_after": {k: "".join(sorted(v)) for k, v in sorted(join.drop_after.items())},
        "collapse": "".join(sorted(join.collapse)),
        "commute": sorted(
            ["".join(sorted(a)), "".join(sorted(b))] for a, b in join.commute_groups()
        ),
    }


def verify_any(any_table: dict, tables: list[dict]) -> None:
    """Every single-character and contraction relation of every member holds under the join."""
    from propguard.glance.collation import NameFolding

    any_fold = NameFolding.from_table(any_table)
    for table in tables:
        relations = [*table["map"].items(), *table["contractions"].items()]
        for lhs, rhs in relations:
            if max(map(ord, lhs + rhs), default=0) > 0xFFFF:
                continue  # mysql_any is the join over the BMP
            if any_fold.fold("x" + lhs + "y") != any_fold.fold("x" + rhs + "y"):
                raise SystemExit(f"mysql_any misses {table['collation']}: {lhs!r} = {rhs!r}")


def dump(table: dict) -> str:
    return json.dumps(table, sort_keys=True, ensure_ascii=True, indent=0) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument(
        "--check", action="store_true", help="only compare with the files; exit 1 if they differ"
    )
    parser.add_argument("--dump-members", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # propguard.glance.collation: the runtime fold

    import pymysql

    connection = pymysql.connect(
        host=args.host, port=args.port, user=args.user, password=args.password,
        charset="utf8mb4", max_allowed_packet=64 * 1024 * 1024,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        server = cursor.fetchone()[0]
        tables = []
        for collation in COLLATIONS:
            tables.append(build_table(cursor, collation, server))
            print(f"{collation}: {len(tables[-1]['map'])} entries, "
                  f"{len(tables[-1]['contractions'])} contractions", file=sys.stderr)  # fmt: skip
    connection.close()
    if args.dump_members:
        args.dump_members.write_text(json.dumps(tables))
    any_table = build_any(tables)
    verify_any(any_table, tables)
    outputs = {f"{t['collation']}.json": dump(t) for t in [*tables, any_table]}
    stale = []
    for name, text in outputs.items():
        path = args.output_dir / name
        if args.check:
            if not path.exists() or path.read_text(encoding="ascii") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="ascii")
            print(f"wrote {path} ({len(text.encode())} bytes)", file=sys.stderr)
    if stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
