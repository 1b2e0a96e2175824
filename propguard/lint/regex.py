"""Regular-language analysis of section patterns, as the engine matches them.

The engine (like Glance) routes a property name to the first section whose
pattern ``re.search``-es it, so the language of a section ``p`` is
``.*p.*`` unless ``p`` is anchored. This module models exactly that: it splits
a pattern into top-level alternatives, takes their ``^``/``\\A`` and
``$``/``\\Z`` anchors off, and represents each as ``[Σ*] body [Σ*]``.

Questions (do two sections overlap? does one contain the other?) are answered
by cheap *exact* arguments first: a concrete name checked with the compiled
regexes is a proof of overlap or a counterexample to containment; conflicting
literal prefixes of two ``^``-anchored patterns prove disjointness. Only what
these leave open goes to finite automata (``interegular``): intersection,
subset and emptiness, with a shortest witness. A pattern interegular cannot
model (look-arounds, back-references, anchors inside groups) is reported as
such (``PG212``), never guessed about.

Alphabet: names are modelled without newlines (``.`` and ``$`` then behave
exactly as in Python's ``re``); witnesses use printable ASCII.
"""

from __future__ import annotations

import functools
import re
import string
from collections import deque
from dataclasses import dataclass, field
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

import interegular
from interegular.fsm import FSM, anything_else

#: Witness characters, most readable first.
_CANDIDATES = string.ascii_lowercase + string.digits + "_-." + string.ascii_uppercase + ":/ "
_FILLER = "z"
_MAXREPEAT = sre_c.MAXREPEAT
#: Longest example name built (a pattern like ``a{4294967294}`` has no useful one).
_MAX_EXAMPLE = 4096
#: Largest repeat count modelled as an automaton (interegular unrolls counts).
_MAX_MODELLED_REPEAT = 256


class Unanalysable(Exception):
    """interegular cannot model this pattern."""


@dataclass(slots=True)
class Alternative:
    """One top-level alternative: ``[^] body [$]`` (anchors removed from ``body``)."""

    text: str
    body: str
    start: bool  # effectively anchored at the start (a leading ``.*`` cancels ``^``)
    end: bool
    leading_dotstar: bool
    trailing_dotstar: bool
    prefix: str = ""  # literal text every match of the body starts with
    suffix: str = ""  # literal text every match of the body ends with
    literal: str | None = None  # the body when it is a plain literal (after .* trimming)
    examples: tuple[str, ...] = ()

    @property
    def free_start(self) -> bool:
        return not self.start

    @property
    def free_end(self) -> bool:
        return not self.end


@dataclass(slots=True)
class PatternInfo:
    """What the analysis knows about one section pattern."""

    pattern: str
    alternatives: list[Alternative]
    search: object  # bound ``re.Pattern.search``
    universal: bool = False
    samples: tuple[str, ...] = ()
    unsupported: str | None = None  # why no automaton can be built
    _fsm: FSM | None = field(default=None, repr=False)

    @property
    def exact(self) -> str | None:
        """The one name this pattern matches, when it is ``^literal$``."""
        if len(self.alternatives) == 1:
            alt = self.alternatives[0]
            if alt.start and alt.end and alt.literal is not None:
                return alt.literal
        return None

    @property
    def contains_literal(self) -> str | None:
        """``L`` when the language is exactly 'names containing L'."""
        if len(self.alternatives) == 1:
            alt = self.alternatives[0]
            if alt.free_start and alt.free_end and alt.literal is not None:
                return alt.literal
        return None

    @property
    def start_anchored(self) -> bool:
        return all(a.start for a in self.alternatives)

    def fsm(self) -> FSM:
        if self._fsm is None:
            if self.unsupported is not None:
                raise Unanalysable(self.unsupported)
            if _largest_repeat(self.pattern) > _MAX_MODELLED_REPEAT:
                self.unsupported = (
                    f"a repetition count above {_MAX_MODELLED_REPEAT} is too large to model"
                )
                raise Unanalysable(self.unsupported)
            parts = []
            for alt in self.alternatives:
                head = "" if alt.start else ".*"
                tail = "" if alt.end else ".*"
                parts.append(f"{head}(?:{alt.body}){tail}")
            try:
                self._fsm = interegular.parse_pattern("|".join(parts)).to_fsm()
            except Exception as exc:  # interegular raises several types
                self.unsupported = _unsupported_reason(exc)
                raise Unanalysable(self.unsupported) from exc
        return self._fsm


@functools.lru_cache(maxsize=8192)
def _parse(pattern: str):
    """``re``'s parse of ``pattern``, shared by the analyses (read-only; raises re.error)."""
    return sre_parse.parse(pattern)


def _largest_repeat(pattern: str) -> int:
    """The largest finite repeat bound in ``pattern`` (0 if none)."""
    try:
        stack = [list(_parse(pattern))]
    except (re.error, RecursionError, OverflowError):
        return 0
    largest = 0
    while stack:
        for op, av in stack.pop():
            if op in (
                sre_c.MAX_REPEAT,
                sre_c.MIN_REPEAT,
                getattr(sre_c, "POSSESSIVE_REPEAT", None),
            ):
                lo, hi, sub = av
                largest = max(largest, lo, 0 if hi == _MAXREPEAT else hi)
                stack.append(list(sub))
            elif op is sre_c.SUBPATTERN:
                stack.append(list(av[-1]))
            elif op is sre_c.BRANCH:
                stack.extend(list(b) for b in av[1])
            elif op is getattr(sre_c, "ATOMIC_GROUP", None):
                stack.append(list(av))
            elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
                stack.append(list(av[1]))
    return largest


def _unsupported_reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def split_alternatives(pattern: str) -> list[str]:
    """Split at top-level ``|`` (outside groups and character classes)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _strip_anchors(text: str) -> tuple[str, bool, bool]:
    start = end = False
    body = text
    if body.startswith("^"):
        body, start = body[1:], True
    elif body.startswith("\\A"):
        body, start = body[2:], True
    if body.endswith("\\Z") and not _escaped(body, len(body) - 2):
        body, end = body[:-2], True
    elif body.endswith("$") and not _escaped(body, len(body) - 1):
        body, end = body[:-1], True
    return body, start, end


def _escaped(text: str, index: int) -> bool:
    count = 0
    index -= 1
    while index >= 0 and text[index] == "\\":
        count += 1
        index -= 1
    return count % 2 == 1


def _is_dotstar(item) -> bool:
    op, av = item
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT) and av[0] == 0 and av[1] == _MAXREPEAT:
        sub = list(av[2])
        return len(sub) == 1 and sub[0][0] is sre_c.ANY
    return False


def analyse(pattern: str) -> PatternInfo:
    """Analyse a pattern that ``re.compile`` accepts."""
    compiled = re.compile(pattern)
    alternatives = [_analyse_alternative(text) for text in split_alternatives(pattern)]
    info = PatternInfo(pattern, alternatives, compiled.search)
    for alt in alternatives:
        # [Σ*] body [Σ*] with at most one anchor and a body that accepts '': every name.
        if not (alt.start and alt.end) and _accepts_empty(alt.body):
            info.universal = True
    samples: list[str] = []
    for alt in alternatives:
        for ex in alt.examples:
            for s in _decorate(ex, alt):
                if s not in samples and compiled.search(s):
                    samples.append(s)
    info.samples = tuple(sorted(samples, key=lambda s: s == ""))  # the empty name last
    if any(ch in pattern for ch in "\n"):
        info.unsupported = "pattern contains a newline"
    return info


def _accepts_empty(body: str) -> bool:
    try:
        return re.fullmatch(body, "") is not None
    except re.error:
        return False


def _decorate(example: str, alt: Alternative) -> list[str]:
    out = [example]
    if alt.free_start:
        out.append(_FILLER + example)
    if alt.free_end:
        out.append(example + "_" + _FILLER)
    if alt.free_start and alt.free_end:
        out.append(_FILLER + example + "_" + _FILLER)
    return out


def _analyse_alternative(text: str) -> Alternative:
    body, start, end = _strip_anchors(text)
    alt = Alternative(text, body, start, end, False, False)
    try:
        items = list(_parse(body))
    except re.error:
        return alt
    while items and _is_dotstar(items[0]):
        items.pop(0)
        alt.leading_dotstar = True
    while items and _is_dotstar(items[-1]):
        items.pop()
        alt.trailing_dotstar = True
    if alt.leading_dotstar:
        alt.start = False
    if alt.trailing_dotstar:
        alt.end = False
    prefix = []
    for op, av in items:
        if op is not sre_c.LITERAL:
            break
        prefix.append(chr(av))
    alt.prefix = "".join(prefix)
    suffix = []
    for op, av in reversed(items):
        if op is not sre_c.LITERAL:
            break
        suffix.append(chr(av))
    alt.suffix = "".join(reversed(suffix))
    if len(prefix) == len(items):
        alt.literal = alt.prefix
    examples = []
    for rich in (False, True):
        ex = _example(items, rich)
        if ex is not None and re.fullmatch(body, ex) is not None and ex not in examples:
            examples.append(ex)
    alt.examples = tuple(examples)
    return alt


def _example(items, rich: bool) -> str | None:
    out: list[str] = []
    for op, av in items:
        part = _example_item(op, av, rich)
        if part is None:
            return None
        out.append(part)
    return "".join(out)


def _example_item(op, av, rich: bool) -> str | None:
    if op is sre_c.LITERAL:
        return chr(av)
    if op is sre_c.NOT_LITERAL:
        return next(c for c in _CANDIDATES if ord(c) != av)
    if op is sre_c.ANY:
        return "a"
    if op is sre_c.IN:
        return _pick_in(av)
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
        lo, hi, sub = av
        count = lo
        if rich and count == 0 and hi != 0:
            count = 1
        part = _example(list(sub), rich)
        if part is None or len(part) * count > _MAX_EXAMPLE:
            return None
        return part * count
    if op is sre_c.SUBPATTERN:
        return _example(list(av[-1]), rich)
    if op is getattr(sre_c, "ATOMIC_GROUP", None):
        return _example(list(av), rich)
    if op is sre_c.BRANCH:
        for branch in av[1]:
            part = _example(list(branch), rich)
            if part is not None:
                return part
        return None
    return None  # anchors, look-arounds, back-references: no simple example


def _pick_in(items) -> str | None:
    negate = any(op is sre_c.NEGATE for op, _ in items)
    for ch in _CANDIDATES:
        hit = any(_in_item(op, av, ch) for op, av in items if op is not sre_c.NEGATE)
        if hit != negate:
            return ch
    return None


def _in_item(op, av, ch: str) -> bool:
    code = ord(ch)
    if op is sre_c.LITERAL:
        return code == av
    if op is sre_c.RANGE:
        return av[0] <= code <= av[1]
    if op is sre_c.CATEGORY:
        name = str(av)
        if "NOT_DIGIT" in name:
            return not ch.isdigit()
        if "DIGIT" in name:
            return ch.isdigit()
        if "NOT_SPACE" in name:
            return not ch.isspace()
        if "SPACE" in name:
            return ch.isspace()
        if "NOT_WORD" in name:
            return not (ch.isalnum() or ch == "_")
        if "WORD" in name:
            return ch.isalnum() or ch == "_"
    return False


def _classes(fsms: list[FSM]) -> tuple[list[str], list[list]]:
    """Representative characters for a product walk, and each FSM's key per character."""
    explicit: set[str] = set()
    for f in fsms:
        explicit.update(c for c in f.alphabet if c is not anything_else and c != "\n")
    chars = sorted(explicit, key=_rank)
    spare = next((c for c in _CANDIDATES if c not in explicit), None)
    if spare is not None:
        chars.append(spare)
    keys = [[f.alphabet[c] for c in chars] for f in fsms]
    return chars, keys


def product_search(first: FSM, others: list[FSM], want_others_final: bool) -> str | None:
    """Shortest name accepted by ``first`` where ``others`` are all final
    (``want_others_final``: intersection) or none is (difference).
    """
    fsms = [first, *others]
    chars, keys = _classes(fsms)
    maps = [f.map for f in fsms]
    finals = [f.finals for f in fsms]
    start = tuple(f.initial for f in fsms)
    parent: dict[tuple, tuple | None] = {start: None}
    queue = deque([start])
    n = len(fsms)
    while queue:
        state = queue.popleft()
        if state[0] in finals[0]:
            if want_others_final:
                ok = all(state[i] is not None and state[i] in finals[i] for i in range(1, n))
            else:
                ok = not any(state[i] is not None and state[i] in finals[i] for i in range(1, n))
            if ok:
                out = []
                while parent[state] is not None:
                    state, ch = parent[state]
                    out.append(ch)
                return "".join(reversed(out))
        for ci, ch in enumerate(chars):
            nxt = []
            dead = False
            for i in range(n):
                cur = state[i]
                key = keys[i][ci]
                target = None if cur is None or key is None else maps[i].get(cur, {}).get(key)
                if target is None and (i == 0 or want_others_final):
                    dead = True
                    break
                nxt.append(target)
            if dead:
                continue
            t = tuple(nxt)
            if t not in parent:
                parent[t] = (state, ch)
                queue.append(t)
    return None


def shortest_string(fsm: FSM) -> str | None:
    """A shortest accepted string, in readable characters, or None if empty."""
    return product_search(fsm, [], True)


def _rank(ch) -> int:
    index = _CANDIDATES.find(ch) if len(ch) == 1 else -1
    return index if index >= 0 else len(_CANDIDATES) + ord(ch[0])


def intersection(a: PatternInfo, b: PatternInfo) -> tuple[bool | None, str | None]:
    """Do the languages of ``a`` and ``b`` share a name? ``(answer, witness)``.

    ``None`` as answer: undecidable here (a pattern interegular cannot model).
    """
    for s in b.samples:
        if a.search(s):
            return True, s
    for s in a.samples:
        if b.search(s):
            return True, s
    for x in a.alternatives:
        for y in b.alternatives:
            for left, right in ((x, y), (y, x)):
                # left's free end and right's free start: left-example + right-example.
                if left.free_end and right.free_start and left.examples and right.examples:
                    w = left.examples[0] + right.examples[0]
                    if a.search(w) and b.search(w):
                        return True, w
    if _provably_disjoint(a, b):
        return False, None
    try:
        w = product_search(a.fsm(), [b.fsm()], True)
    except Unanalysable:
        return None, None
    if w is None:
        return False, None
    return True, w


def _provably_disjoint(a: PatternInfo, b: PatternInfo) -> bool:
    if a.exact is not None:
        return not b.search(a.exact)
    if b.exact is not None:
        return not a.search(b.exact)
    for x in a.alternatives:
        for y in b.alternatives:
            if x.start and y.start and _conflict(x.prefix, y.prefix):
                continue
            if x.end and y.end and _conflict(x.suffix[::-1], y.suffix[::-1]):
                continue
            return False
    return True


def _conflict(p: str, q: str) -> bool:
    n = min(len(p), len(q))
    return p[:n] != q[:n]


def is_subset(b: PatternInfo, a: PatternInfo) -> bool | None:
    """Is every name ``b`` matches also matched by ``a``? ``None``: cannot tell."""
    if a.universal:
        return True
    for s in b.samples:
        if not a.search(s):
            return False
    if b.exact is not None:
        return bool(a.search(b.exact))
    if all(any(_alt_contains(x, y) for x in a.alternatives) for y in b.alternatives):
        return True
    try:
        return product_search(b.fsm(), [a.fsm()], False) is None
    except Unanalysable:
        return None


def _alt_contains(x: Alternative, y: Alternative) -> bool:
    """Cheap proof that L(y) ⊆ L(x) (False means: not proven)."""
    if x.literal is None:
        return False
    lit = x.literal
    if x.free_start and x.free_end:  # names containing lit
        return lit in y.prefix or lit in y.suffix
    if x.start and x.free_end:  # names starting with lit
        return y.start and y.prefix.startswith(lit)
    if x.free_start and x.end:  # names ending with lit
        return y.end and y.suffix.endswith(lit)
    return False


def covered_by_union(b: PatternInfo, earlier: list[PatternInfo]) -> tuple[bool | None, str | None]:
    """Is ``b`` covered by the union of ``earlier``? Else ``(False, a name b gets)``."""
    try:
        w = product_search(b.fsm(), [a.fsm() for a in earlier], False)
    except Unanalysable:
        return None, None
    return (True, None) if w is None else (False, w)


def backtracking_risk(pattern: str) -> str | None:
    """A description of a nested or overlapping repetition, or None.

    Flags repetitions with star height > 1 (``(a+)+``, ``(.*)*``,
    ``(\\w+_?)+``) and repeated alternations whose branches can start alike
    (``(a|ab)*``): the shapes for which a backtracking matcher such as Python's
    ``re`` can take exponential time on a non-matching name.
    """
    try:
        items = _parse(pattern)
    except re.error:
        return None
    return _scan(list(items), inside_repeat=False)


_REPEATS = tuple(
    op
    for op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None))
    if op
)


def _scan(items, inside_repeat: bool) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            lo, hi, sub = av
            unbounded = hi == _MAXREPEAT or hi > 16
            if unbounded and inside_repeat:
                return "a repetition nested inside another repetition"
            if unbounded:
                inner = list(sub)
                found = _scan(inner, inside_repeat=True)
                if found:
                    return found
                if _overlapping_branches(inner):
                    return "a repeated alternation whose branches can match the same text"
            else:
                found = _scan(list(sub), inside_repeat)
                if found:
                    return found
        elif op is sre_c.SUBPATTERN:
            found = _scan(list(av[-1]), inside_repeat)
            if found:
                return found
        elif op is sre_c.BRANCH:
            for branch in av[1]:
                found = _scan(list(branch), inside_repeat)
                if found:
                    return found
    return None


def _overlapping_branches(items) -> bool:
    for op, av in items:
        if op is sre_c.SUBPATTERN:
            return _overlapping_branches(list(av[-1]))
        if op is sre_c.BRANCH:
            firsts = []
            for branch in av[1]:
                ex = _example(list(branch), False)
                if ex is None or ex == "":
                    return ex == ""
                firsts.append(ex[0])
            return len(set(firsts)) < len(firsts)
    return False
