"""Sections under a folding collation: which folded names can a section take?

On MySQL/MariaDB the filter decides every property name as its folded
spelling (``NameFolding.fold``: ``Licence_x`` is decided as ``licence_x``).
A section whose pattern matches no folded name never applies there: the
names it was written for fall through to a later section, usually a
permissive ``[.*]`` (fail open). :func:`folded_problems` finds such sections,
and top-level alternatives, for the loader (PG119, a load error: the filter
refuses the file, ``propguard lint`` reports it with the same code).

Why refuse rather than fold the pattern: folding a pattern's literals is
not the same language as "names whose fold the pattern matches". Character
classes (``[^A-Z]`` folded to ``[^a-z]`` means something else), ``(?i)``
(case, but not accents or trailing spaces), ``\\S``/``\\W`` escapes,
alternation mixing spellings, and anchors next to trailing spaces (``x $``
can never match a PAD SPACE key) all change meaning; the result would be
a rule the operator never wrote and ``explain`` would have to show it. So the
file is refused and the message gives the folded spelling to write, checked
to take the folded names the section was written for.

The question "does pattern ``p`` match some folded name?" is answered
exactly for the ``general_ci`` collations (their folded names are exactly
the strings over the characters the fold keeps, not ending in a space) and
soundly for the UCA collations and ``mysql_any``: a superset of their folded
names (the characters a fold can output, with ``mysql_any``'s rewrite rules
as forbidden neighbours) is intersected with the pattern's automaton; an
empty intersection proves the section dead. A pattern the automata cannot
model (look-arounds, flags, back-references) that no example proves alive is
reported by lint as not checked (PG212), never refused on a guess.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from functools import cache

from propguard.glance.collation import NameFolding
from propguard.rules.model import Position, Problem, RulesDocument, Section, Severity

__all__ = ["FoldImage", "Liveness", "fold_pattern_literals", "folded_problems", "liveness"]

_BMP_MAX = 0xFFFF
#: Generic characters tried for "any other character" in the automaton walk.
_SPARES = "zqxjkvw0123456789" + "".join(chr(c) for c in range(0x4E00, 0x4E40))
_START = "\x00start"
_GENERIC = ""


@dataclass(frozen=True)
class FoldImage:
    """A superset (exact for general_ci) of the folded names of one collation.

    A word is in it when every character can be output by the fold, it does
    not end in a space under PAD SPACE, and (``mysql_any``) no neighbours the
    rewrite rules remove: a run of a ``collapse`` character, a character
    dropped after its trigger, a ``commute`` pair in the wrong order.
    """

    folding: NameFolding
    outputs: frozenset[str]
    relevant: frozenset[str]

    def allows(self, ch: str) -> bool:
        if ch in self.outputs:
            return True
        code = ord(ch)
        if code > _BMP_MAX and self.folding.supplementary is not None:
            return False
        mapped = self.folding.translation.get(code)
        return mapped is None or mapped == ch

    def step(self, state: str, ch: str) -> str | None:
        """The state after ``ch``, or None when no folded name continues so."""
        if ch == "\n" or not self.allows(ch):
            return None
        f = self.folding
        if state in f.collapse and ch == state:
            return None
        dropped = f.drop_after.get(state)
        if dropped is not None and ch in dropped:
            return None
        for first, second in f.commute:
            if state in second and ch in first:
                return None
        return ch if ch in self.relevant else _GENERIC

    def accepts(self, state: str) -> bool:
        return not (self.folding.pad_space and state == " ")

    def contains(self, word: str) -> bool:
        state: str | None = _START
        for ch in word:
            state = self.step(state, ch)
            if state is None:
                return False
        return self.accepts(state)


@cache
def fold_image(folding: NameFolding) -> FoldImage:
    outputs: set[str] = set()
    for out in folding.translation.values():
        outputs.update(out)
    for out in folding.contractions.values():
        outputs.update(out)
    if folding.supplementary:
        outputs.update(folding.fold(folding.supplementary))
    relevant = {" "} | set(folding.collapse) | set(folding.drop_after)
    for _, second in folding.commute:
        relevant |= second
    return FoldImage(folding, frozenset(outputs), frozenset(relevant))


@dataclass(frozen=True)
class Liveness:
    """Does a pattern match a folded name? ``alive`` None: cannot tell (not modelled)."""

    alive: bool | None
    #: a folded name it matches (alive), or a raw name it was written for (dead)
    example: str | None = None


def _walk(fsms: list, image: FoldImage, exclude: int = 0) -> str | None:
    """Shortest word the first ``len(fsms) - exclude`` automata accept, ``image``
    contains, and none of the last ``exclude`` automata accepts."""
    from interegular.fsm import anything_else

    explicit: set[str] = set()
    for f in fsms:
        explicit.update(c for c in f.alphabet if c is not anything_else and c != "\n")
    spare = next(
        (c for c in _SPARES if c not in explicit and c not in image.relevant and image.allows(c)),
        None,
    )
    chars = sorted(explicit) + ([spare] if spare is not None else [])
    chars = [c for c in chars if image.allows(c)]
    keys = [[f.alphabet[c] for c in chars] for f in fsms]
    maps = [f.map for f in fsms]
    finals = [f.finals for f in fsms]
    required = len(fsms) - exclude
    start = (*(f.initial for f in fsms), _START)
    parent: dict[tuple, tuple | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if (
            all(state[i] in finals[i] for i in range(required))
            and not any(
                state[i] is not None and state[i] in finals[i] for i in range(required, len(fsms))
            )
            and image.accepts(state[-1])
        ):
            out = []
            while parent[state] is not None:
                state, ch = parent[state]
                out.append(ch)
            return "".join(reversed(out))
        for ci, ch in enumerate(chars):
            img = image.step(state[-1], ch)
            if img is None:
                continue
            nxt = []
            for i in range(len(fsms)):
                cur, key = state[i], keys[i][ci]
                target = None if cur is None or key is None else maps[i].get(cur, {}).get(key)
                if target is None and i < required:
                    break
                nxt.append(target)
            else:
                t = (*nxt, img)
                if t not in parent:
                    parent[t] = (state, ch)
                    queue.append(t)
    return None


def liveness(pattern: str, folding: NameFolding) -> Liveness:
    """Whether ``pattern`` (as ``re.search`` applies it) matches some folded name."""
    from propguard.lint.regex import Unanalysable, analyse

    info = analyse(pattern)
    fold = folding.fold
    for sample in info.samples:
        if info.search(fold(sample)):
            return Liveness(True, fold(sample))
    try:
        fsm = info.fsm()
        witness = _walk([fsm], fold_image(folding))
    except (Unanalysable, RecursionError, MemoryError, OverflowError):
        return Liveness(None)
    if witness is None:
        return Liveness(False, info.samples[0] if info.samples else None)
    folded = fold(witness)
    if info.search(folded):
        return Liveness(True, folded)
    return Liveness(None)  # in the superset, not proven a folded name


def reaching_folded(pattern: str, earlier: list[str], folding: NameFolding) -> str | None:
    """A folded name ``pattern`` matches and no ``earlier`` pattern does (None: none found).

    Every answer is checked with the compiled patterns: its fold is itself.
    """
    from propguard.lint.regex import Unanalysable, analyse

    info = analyse(pattern)
    others = [analyse(p) for p in earlier]
    try:
        fsms = [info.fsm(), *(o.fsm() for o in others)]
        witness = _walk(fsms, fold_image(folding), exclude=len(others))
    except (Unanalysable, RecursionError, MemoryError, OverflowError):
        return None
    if witness is None:
        return None
    folded = folding.fold(witness)
    if info.search(folded) and not any(o.search(folded) for o in others):
        return folded
    return None


def fold_pattern_literals(pattern: str, folding: NameFolding) -> str:
    """``pattern`` with its literal text folded (runs outside classes as a whole,
    class members one by one); escapes and group syntax kept.

    Only a suggestion for the message (see the module docstring): the caller
    checks it before showing it.
    """
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        text = "".join(run)
        body = text.rstrip(" ")
        out.append(folding.fold(body) + text[len(body) :] if body else text)
        run.clear()

    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            flush()
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
                out.append(ch)
            else:
                out.append(folding.fold(ch) or ch if ch not in "^- " else ch)
            i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            flush()
            end = i + 2
            if pattern.startswith("P<", end):
                end = pattern.find(">", end) + 1 or n
            else:
                while end < n and pattern[end] not in ":)":
                    end += 1
            out.append(pattern[i:end])
            i = end
            continue
        if ch in ".^$*+?{}()|,0123456789" or ch == "[":
            flush()
            out.append(ch)
            if ch == "[":
                in_class = True
                if pattern.startswith("]", i + 1) or pattern.startswith("^]", i + 1):
                    k = 2 if pattern[i + 1] == "^" else 1
                    out.append(pattern[i + 1 : i + 1 + k])
                    i += k
            i += 1
            continue
        run.append(ch)
        i += 1
    flush()
    return "".join(out)


def _suggestion(pattern: str, written_for: list[str], folding: NameFolding) -> str | None:
    """A folded spelling of ``pattern`` that takes the fold of every name it was written for."""
    candidate = fold_pattern_literals(pattern, folding)
    if candidate == pattern:
        return None
    try:
        search = re.compile(candidate).search
    except re.error:
        return None
    if not written_for or not all(search(folding.fold(s)) for s in written_for):
        return None
    if liveness(candidate, folding).alive is not True:
        return None
    return candidate


def folded_problems(document: RulesDocument, folding: NameFolding) -> list[Problem]:
    """PG119 for every section, and every top-level alternative, that matches no folded name.

    Nothing for an exact collation (``binary``).
    """
    if folding.is_identity:
        return []
    from propguard.lint.regex import analyse, split_alternatives

    problems: list[Problem] = []
    for section in document.sections:
        problem = _section_problem(section, folding)
        if problem is not None:
            problems.append(problem)
            continue
        alternatives = split_alternatives(section.pattern)
        if len(alternatives) < 2:
            continue
        for alt in alternatives:
            if not alt or liveness(alt, folding).alive is not False:
                continue
            samples = list(analyse(alt).samples)
            problems.append(_dead(section, folding, samples, alternative=alt))
    return problems


def _section_problem(section: Section, folding: NameFolding) -> Problem | None:
    from propguard.lint.regex import analyse

    live = liveness(section.pattern, folding)
    if live.alive is not False:
        return None
    return _dead(section, folding, list(analyse(section.pattern).samples))


def _dead(
    section: Section, folding: NameFolding, samples: list[str], alternative: str | None = None
) -> Problem:
    p = section.position
    where = Position(p.file, p.line, p.column + 1)
    what = (
        f"[{section.pattern}]"
        if alternative is None
        else (f"the alternative '{alternative}' of [{section.pattern}]")
    )
    example = ""
    if samples:
        s = samples[0]
        example = f": e.g. the name {s!r} is decided as {folding.fold(s)!r}"
    pattern = section.pattern if alternative is None else alternative
    suggestion = _suggestion(pattern, samples, folding)
    if suggestion is not None:
        hint = f"write [{suggestion}]" if alternative is None else f"write '{suggestion}' instead"
    else:
        hint = "write the pattern in the spelling the database folds names to (lower case, "
        hint += "no accents, no trailing spaces)"
    hint += (
        "; propguard does not fold patterns itself (a folded character class, (?i) or "
        "anchor can mean something else)"
    )
    return Problem(
        "PG119",
        Severity.ERROR,
        where,
        f"{what} matches no property name as the image database compares names "
        f"(name_collation = {folding.name}): the filter decides each name as its folded "
        f"spelling{example}, so the names it was written for fall through to a later "
        "section",
        hint,
    )
