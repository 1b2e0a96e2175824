"""Order analysis of a rules file's sections (codes PG202-PG205, PG210-PG212).

Uses :mod:`propguard.lint.regex` on the sections the parser produced; every
witness name it reports is checked against the compiled patterns in the
engine's order (first ``re.search`` wins), so a witness is never a guess.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from propguard.lint.regex import (
    PatternInfo,
    Unanalysable,
    analyse,
    backtracking_risk,
    covered_by_union,
    intersection,
    is_subset,
)
from propguard.rules.engine import OS_GLANCE_SECTION
from propguard.rules.model import OPERATIONS, Position, Problem, RulesDocument, Section, Severity

#: Names tried first when looking for one that no section matches.
_PROBES = ("zz_unmatched", "z", "property", "x", "Z9", "_", "-", "~", "")


@dataclass
class SectionReport:
    """Results of the order analysis, reused by ``explain``/``matrix``."""

    problems: list[Problem] = field(default_factory=list)
    #: section index -> a name the engine routes to that section (None: unreachable/unknown)
    reaching: dict[int, str | None] = field(default_factory=dict)
    infos: dict[int, PatternInfo] = field(default_factory=dict)


def _value_key(section: Section) -> tuple:
    out = []
    for op in OPERATIONS:
        v = section.values[op]
        out.append((v.everyone, v.nobody or v.empty, frozenset(v.entries), v.policy))
    return tuple(out)


def _pos(section: Section, offset: int = 1) -> Position:
    p = section.position
    return Position(p.file, p.line, p.column + offset)


def analyse_sections(
    doc: RulesDocument,
    *,
    os_glance_section: bool = True,
    overlap: bool = True,
    broken: list[Section] = (),
) -> SectionReport:
    """The order analysis of ``doc.sections`` in engine order.

    ``broken``: sections the parser refused for their values (``values``
    empty, negative ``index``) whose pattern compiles. They take names in
    file order like any section, so a later section they shadow is reported;
    nothing is reported about them.
    """
    report = SectionReport()
    sections = sorted([*doc.sections, *broken], key=lambda s: (s.position.line, s.position.column))
    builtin = [OS_GLANCE_SECTION] if os_glance_section else []
    ordered = builtin + sections  # engine order
    infos = [analyse(s.pattern) for s in ordered]
    keys = [_value_key(s) if s.values else ("broken", s.index) for s in ordered]
    unanalysable_reported: set[int] = set()
    loose: set[int] = set()  # flagged PG204/PG205: their overlaps are reported there
    # Index of start-anchored patterns by literal prefix, to skip provably disjoint pairs.
    anchored: list[tuple[str, int]] = []
    wild: list[int] = []

    def note_unanalysable(k: int) -> None:
        if k in unanalysable_reported or k < len(builtin):
            return
        unanalysable_reported.add(k)
        sec = ordered[k]
        reason = infos[k].unsupported or "not supported"
        report.problems.append(
            Problem(
                "PG212",
                Severity.INFO,
                _pos(sec),
                f"[{sec.pattern}] cannot be modelled as a regular language ({reason}); "
                "overlap and reachability with it were not checked",
                "avoid look-arounds, back-references and anchors inside groups",
            )
        )

    for k, section in enumerate(ordered):
        info = infos[k]
        report.infos[section.index] = info
        cands = _candidates(k, info, infos, anchored, wild)
        if not section.builtin and _needs_automaton_check(section.pattern):
            try:
                info.fsm()
            except Unanalysable:
                note_unanalysable(k)
        if not section.builtin and section.values:
            if _pattern_style(section, info, report):
                loose.add(k)
            _check_reach_and_overlap(
                k,
                section,
                info,
                cands,
                ordered,
                infos,
                keys,
                report,
                overlap and k not in loose,
                note_unanalysable,
                loose,
            )
        _register(k, info, anchored, wild)

    _check_catch_all(doc, ordered, infos, report)
    return report


def _needs_automaton_check(pattern: str) -> bool:
    """Constructs interegular may not model: try them eagerly to say so (PG212)."""
    return "(?" in pattern or re.search(r"\\[0-9bB]", pattern) is not None


def _register(k: int, info: PatternInfo, anchored: list, wild: list) -> None:
    if info.start_anchored and all(a.prefix for a in info.alternatives):
        for alt in info.alternatives:
            bisect.insort(anchored, (alt.prefix, k))
    else:
        wild.append(k)


def _candidates(k: int, info: PatternInfo, infos, anchored: list, wild: list) -> list[int]:
    """Earlier sections whose language may intersect ``info`` (a superset, in order)."""
    if not (info.start_anchored and all(a.prefix for a in info.alternatives)):
        return list(range(k))
    found: set[int] = set(wild)
    for alt in info.alternatives:
        p = alt.prefix
        for n in range(1, len(p) + 1):  # earlier prefixes that are prefixes of p
            i = bisect.bisect_left(anchored, (p[:n], -1))
            while i < len(anchored) and anchored[i][0] == p[:n]:
                found.add(anchored[i][1])
                i += 1
        i = bisect.bisect_left(anchored, (p, -1))  # earlier prefixes that extend p
        while i < len(anchored) and anchored[i][0].startswith(p):
            found.add(anchored[i][1])
            i += 1
    return sorted(found)


def _routes_to(name: str, k: int, cands: list[int], infos) -> bool:
    return infos[k].search(name) is not None and not any(infos[j].search(name) for j in cands)


def _check_reach_and_overlap(
    k, section, info, cands, ordered, infos, keys, report, overlap, note_unanalysable, loose
) -> None:
    reach = next((s for s in info.samples if _routes_to(s, k, cands, infos)), None)
    inter_cache: dict[int, tuple[bool | None, str | None]] = {}

    def inter(j: int):
        if j not in inter_cache:
            inter_cache[j] = intersection(infos[j], info)
        return inter_cache[j]

    if reach is None:
        shadow = None
        hitting: list[int] = []
        unknown = False
        for j in cands:
            ok, _ = inter(j)
            if ok is None:
                unknown = True
                note_unanalysable(j if infos[j].unsupported else k)
                continue
            if not ok:
                continue
            hitting.append(j)
            sub = is_subset(info, infos[j])
            if sub:
                shadow = [j]
                break
            if sub is None:
                unknown = True
        if shadow is None and hitting and not unknown:
            covered, witness = covered_by_union(info, [infos[j] for j in hitting])
            if covered:
                shadow = hitting
            elif covered is None:
                unknown = True
                note_unanalysable(k)
            elif witness is not None and _routes_to(witness, k, cands, infos):
                reach = witness
        elif shadow is None and not hitting and not unknown:
            reach = info.samples[0] if info.samples else None
        if shadow is not None:
            example = info.samples[0] if info.samples else None
            takers = " and ".join(ordered[j].describe() for j in shadow[:3])
            if len(shadow) > 3:
                takers += f" and {len(shadow) - 3} more"
            eg = f", e.g. {example!r}" if example is not None else ""
            # An error where it changes who can read or write: the takers give other rights.
            same = all(same_rights(section, ordered[j]) for j in shadow)
            report.problems.append(
                Problem(
                    "PG202",
                    Severity.WARNING if same else Severity.ERROR,
                    _pos(section),
                    f"[{section.pattern}] can never match: every name matched by "
                    f"[{section.pattern}] is taken by {takers}{eg}"
                    + (
                        " (which give the same rights)"
                        if same
                        else ", whose rights differ: its own are never applied"
                    ),
                    "move the section above the one that takes its names, or remove it",
                )
            )
            report.reaching[section.index] = None
            return
        if unknown and reach is None:
            note_unanalysable(k)
    report.reaching[section.index] = reach
    if not overlap:
        return
    hits: list[tuple[int, str]] = []
    for j in cands:
        other = ordered[j]
        if other.builtin or not other.values or keys[j] == keys[k] or j in loose:
            continue
        if infos[j].contains_literal is not None and info.contains_literal is not None:
            continue  # both plain unanchored literals: reported as PG204 instead
        ok, witness = inter(j)
        if not ok or witness is None:
            continue
        if is_subset(infos[j], info) is not False:  # specific before general (or unknown)
            continue
        if is_subset(info, infos[j]) is not False:
            continue
        if infos[j].search(witness) and info.search(witness):
            hits.append((j, witness))
            break  # the first (nearest in file order) is reported
    if hits:
        j, witness = hits[0]
        more = ""
        report.problems.append(
            Problem(
                "PG203",
                Severity.WARNING,
                _pos(section),
                f"[{section.pattern}] overlaps {ordered[j].describe()} with different rules, "
                f"so order decides: e.g. {witness!r} is taken by [{ordered[j].pattern}]{more}",
                "anchor the patterns so they do not overlap, or make the order intent explicit "
                "with a suppression comment",
            )
        )


def _pattern_style(section: Section, info: PatternInfo, report: SectionReport) -> bool:
    """Report PG211/PG205/PG204; True when the pattern is flagged as too loose."""
    risk = backtracking_risk(section.pattern)
    if risk:
        report.problems.append(
            Problem(
                "PG211",
                Severity.WARNING,
                _pos(section),
                f"[{section.pattern}] is prone to catastrophic backtracking ({risk}); "
                "a crafted property name can stall the API worker",
                "remove the nested repetition, e.g. '(a+)+' -> 'a+'",
            )
        )
    if info.universal:
        return False
    for alt in info.alternatives:
        items_text = alt.body
        glob = re.search(r"(?<![\\.\])}*+?])([A-Za-z0-9_\-])\*$", items_text)
        if glob and alt.free_end and not alt.trailing_dotstar:
            stem = items_text[:-2] if len(items_text) >= 2 else ""
            report.problems.append(
                Problem(
                    "PG205",
                    Severity.WARNING,
                    _pos(section),
                    f"[{section.pattern}] reads like a shell glob, but in a regex "
                    f"'{glob.group(1)}*' means zero or more '{glob.group(1)}': it matches every "
                    f"name containing {stem!r}",
                    f"did you mean '^{items_text[:-1]}.*'?",
                )
            )
            return True
    for alt in info.alternatives:
        if alt.free_start and not alt.leading_dotstar and not alt.end and alt.examples:
            ex = alt.examples[0]
            witness = "x" + ex + ("" if alt.trailing_dotstar else "_2")
            if not info.search(witness):
                continue
            report.problems.append(
                Problem(
                    "PG204",
                    Severity.WARNING,
                    _pos(section),
                    f"[{section.pattern}] is unanchored: re.search also matches names that "
                    f"merely contain it, e.g. {witness!r}",
                    f"write '^{alt.body}$' for exactly this name or '^{alt.body}' for a prefix",
                )
            )
            return True
    return False


def _check_catch_all(doc: RulesDocument, ordered, infos, report: SectionReport) -> None:
    if not doc.sections or any(i.universal for i in infos):
        return
    witness = next((n for n in _PROBES if not any(i.search(n) for i in infos)), None)
    if witness is None:
        everything = analyse(".*")
        covered, witness = covered_by_union(everything, infos)
        if covered or covered is None:
            return
    last = doc.sections[-1]
    report.problems.append(
        Problem(
            "PG210",
            Severity.WARNING,
            _pos(last, 0),
            f"no catch-all section: names that no section matches, e.g. {witness!r}, are "
            "denied to everyone, admin included",
            "end the file with a [.*] section that says who may handle other properties",
        )
    )


def same_rights(a: Section, b: Section) -> bool:
    """Do two sections give every operation to the same callers (as written)?"""

    def rights(section: Section) -> dict:
        return {
            op: (v.everyone, v.nobody, frozenset(v.entries), v.policy)
            for op, v in section.values.items()
        }

    return rights(a) == rights(b)
