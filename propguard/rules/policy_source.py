"""Read oslo.policy files as the filter reads them: the one reader of policy files.

The filter's loader (:func:`propguard.rules.policy_set.load_policy_set`) and
``propguard lint`` both read policy files here, file by file, so lint cannot
read less (or differently) than the filter does:

* :func:`policy_set_files`: the policy file, then every file of each of its
  ``policy_dirs`` whose name does not start with a dot, in name order, no
  recursion (as oslo.policy's ``Enforcer._walk_through_policy_directory``);
* :func:`read_policy_source`: one file, decoded as UTF-8 and parsed as YAML
  (JSON is YAML) with the position of every key and value; whatever the
  filter refuses is a :class:`~propguard.rules.model.Problem` with file, line
  and column, never an exception;
* :func:`parse_check`: one check string, with oslo.policy's own parser (its
  traceback logging silenced), and whether part of it was unparsable;
* :func:`rule_graph`: depth and cycles of ``rule:`` references, computed
  without recursion, so a 1500-deep chain is a finding, not a crash.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import yaml
from oslo_policy import _checks, _parser
from oslo_policy import policy as oslo_policy

from propguard.rules.model import Position, Problem, Severity

#: oslo.policy's default ``[oslo_policy] policy_dirs``, as glance-api uses it.
DEFAULT_POLICY_DIRS: tuple[str, ...] = ("policy.d",)

#: Deepest nesting of a policy (``and``/``or``/``not`` and ``rule:`` hops)
#: propguard evaluates. oslo.policy evaluates checks recursively, a few Python
#: frames per level: a deeper chain would end a request in RecursionError.
#: Real policies nest a handful of levels.
MAX_POLICY_DEPTH = 100


@dataclass
class PolicyEntry:
    """One ``name: check string`` of a policy file, with its positions."""

    name: str
    check_str: object
    key_pos: Position
    value_pos: Position
    check: _checks.BaseCheck | None = None
    #: oslo.policy could not parse (part of) the check string and made it ``!``.
    unparsable: bool = False
    #: why (PG303), when ``unparsable``
    problem: Problem | None = None


@dataclass
class PolicySource:
    """One policy file as read: its entries in file order, and what is wrong with it.

    ``problems`` concern the file as a whole (it cannot be read, is not YAML,
    not a mapping; duplicate keys as warnings): the loader refuses a set with
    any error among them. ``entry_problems`` concern one rule (a check string
    oslo.policy cannot parse, a value that is no check string, a name that
    is not a string): the loader refuses them where a rules file uses the
    rule; lint reports them all.
    """

    path: str
    entries: dict[str, PolicyEntry] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    entry_problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]


# -- which files ------------------------------------------------------------


def policy_dir_paths(policy_file: str | None, policy_dirs: Iterable[str]) -> list[str]:
    """Absolute paths of ``policy_dirs``; a relative one is taken next to ``policy_file``.

    Without a policy file there is nothing for a directory to override, as
    in oslo.policy, so no directory is used.
    """
    if not policy_file:
        return []
    base = os.path.dirname(policy_file)
    return [os.path.normpath(os.path.join(base, d)) for d in policy_dirs if d]


def policy_dir_files(directory: str) -> list[str]:
    """The files oslo.policy loads from a policy directory, in its order.

    Every directory entry that is not a directory (dangling links included)
    and does not start with a dot, sorted by name, no recursion
    (``Enforcer._walk_through_policy_directory``).
    """
    try:
        names = sorted(next(os.walk(directory))[2])
    except StopIteration:
        return []
    return [os.path.join(directory, n) for n in names if not n.startswith(".")]


def policy_set_files(
    policy_file: str | None, policy_dirs: Iterable[str] = DEFAULT_POLICY_DIRS
) -> list[str]:
    """Every file the filter reads for ``policy_file`` and ``policy_dirs``, in load order.

    A directory in ``policy_dirs`` that does not exist is skipped, as
    oslo.policy skips it; later files override earlier ones.
    """
    if not policy_file:
        return []
    files = [policy_file]  # as given: positions name the files as the caller does
    for directory in policy_dir_paths(policy_file, policy_dirs):
        if os.path.isdir(directory):
            files.extend(policy_dir_files(directory))
    return files


# -- one file ---------------------------------------------------------------


#: libyaml's parser when PyYAML has it (the same YAML, a tenth of the time).
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """SafeLoader that records duplicate keys and key/value positions."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            loader.duplicates.append((key, key_node.start_mark, seen[key]))
        else:
            seen[key] = key_node.start_mark
        if node is loader.top:
            loader.positions[key] = (key_node.start_mark, value_node.start_mark)
    return _BaseLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _mark_pos(path: str, mark) -> Position:
    return Position(path, mark.line + 1, mark.column + 1)


def _offset_pos(path: str, text: str, offset: int) -> Position:
    """Line and column of character ``offset`` in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Position(path, line, column)


def _error(
    path: str | Position, message: str, hint: str | None = None, code: str = "PG118"
) -> Problem:
    where = path if isinstance(path, Position) else Position(path, 1)
    return Problem(code, Severity.ERROR, where, message, hint)


def read_text(
    path: str, what: str = "policy file", code: str = "PG118"
) -> tuple[str | None, Problem | None]:
    """The UTF-8 text of a regular file, or the problem that stops reading it.

    Shared by every reader of the filter (rules file, policy files): a
    directory, a FIFO, a dangling link or bytes that are not UTF-8 are a
    problem at a position, never an exception (nor a read that blocks).
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        return None, _error(path, f"cannot read {what}: {exc.strerror or exc}", code=code)
    if not stat.S_ISREG(info.st_mode):
        kind = "it is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return None, _error(path, f"cannot read {what}: {kind}", code=code)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return None, _error(path, f"cannot read {what}: {exc.strerror or exc}", code=code)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", "replace")
        where = _offset_pos(path, prefix, len(prefix))
        return None, _error(
            where,
            f"cannot read {what}: not UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8",
            code=code,
        )


#: Parsed files by (path, content): the loader, auto-detection and lint read a
#: file several times in one run, and YAML parsing is the slow part.
_SOURCES: OrderedDict[tuple[str, str], PolicySource] = OrderedDict()
_SOURCES_LOCK = threading.Lock()
_SOURCES_MAX = 64


def read_policy_source(path: str) -> PolicySource:
    """Read one policy file as the filter does; every problem with its position.

    The file is read every time; its parse is shared while its content is
    unchanged: callers must not modify the result.
    """
    text, problem = read_text(path)
    if problem is not None:
        return PolicySource(path, problems=[problem])
    assert text is not None
    key = (path, text)
    with _SOURCES_LOCK:
        cached = _SOURCES.get(key)
        if cached is not None:
            _SOURCES.move_to_end(key)
            return cached
    source = _parse_policy_text(path, text)
    with _SOURCES_LOCK:
        _SOURCES[key] = source
        while len(_SOURCES) > _SOURCES_MAX:
            _SOURCES.popitem(last=False)
    return source


def _parse_policy_text(path: str, text: str) -> PolicySource:
    source = PolicySource(path)
    data, loader = _load_yaml(source, text)
    if loader is None:
        return source
    if data is None:
        return source
    if not isinstance(data, dict):
        source.problems.append(
            _error(path, "policy file must be a mapping of rule names to check strings")
        )
        return source
    for key, mark, first in loader.duplicates:
        source.problems.append(
            Problem(
                "PG301",
                Severity.WARNING,
                _mark_pos(path, mark),
                f"'{key}' is defined twice (first at line {first.line + 1}); "
                "YAML keeps only this last value, silently",
                "remove one of the two definitions",
            )
        )
    for key, value in data.items():
        key_mark, value_mark = loader.positions.get(key, (None, None))
        key_pos = _mark_pos(path, key_mark) if key_mark else Position(path, 1)
        value_pos = _mark_pos(path, value_mark) if value_mark else key_pos
        if not isinstance(key, str):
            source.entry_problems.append(
                Problem(
                    "PG303",
                    Severity.ERROR,
                    key_pos,
                    f"policy name {key!r} is not a string: no rules file can name it",
                    "quote the name",
                )
            )
            continue
        entry = PolicyEntry(key, value, key_pos, value_pos)
        source.entries[key] = entry
        entry.problem = _parse_entry(entry)
        if entry.problem is not None:
            source.entry_problems.append(entry.problem)
    return source


def _load_yaml(source: PolicySource, text: str):
    path = source.path
    loader = None
    try:
        loader = _Loader(text)
        loader.duplicates = []
        loader.positions = {}
        loader.top = loader.get_single_node()
        data = loader.construct_document(loader.top) if loader.top is not None else None
    except yaml.reader.ReaderError as exc:
        where = _offset_pos(path, text, exc.position)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        source.problems.append(
            _error(
                where,
                f"policy file holds the control character U+{ord(char):04X}, which YAML refuses",
                "remove it (oslo.policy refuses the whole file, and in a policy.d the whole set)",
            )
        )
        return None, None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = _mark_pos(path, mark) if mark is not None else Position(path, 1)
        source.problems.append(
            _error(
                where,
                f"policy file is not valid YAML: {getattr(exc, 'problem', None) or exc}",
                "oslo.policy refuses the whole file (and, in a policy.d, the whole set)",
            )
        )
        return None, None
    except RecursionError:
        source.problems.append(_error(path, "policy file is nested too deeply to be read"))
        return None, None
    finally:
        if loader is not None:
            loader.dispose()
    return data, loader


def _parse_entry(entry: PolicyEntry) -> Problem | None:
    """Parse the entry's check string; the problem when oslo.policy could not (PG303)."""
    if not isinstance(entry.check_str, str):
        kind = "empty" if entry.check_str is None else type(entry.check_str).__name__
        why = (
            " (oslo.policy would read an empty value as 'allow everyone')"
            if entry.check_str is None or entry.check_str == []
            else ""
        )
        entry.check = _checks.FalseCheck()
        entry.unparsable = True
        return unparsable_problem(entry, f"'{entry.name}' must be a check string, not {kind}{why}")
    entry.check, entry.unparsable = parse_check(entry.check_str)
    if entry.unparsable:
        return unparsable_problem(entry)
    return None


def unparsable_problem(entry: PolicyEntry, message: str | None = None) -> Problem:
    """PG303 for an entry whose value oslo.policy cannot (all) parse."""
    if message is not None:
        return Problem(
            "PG303",
            Severity.ERROR,
            entry.value_pos,
            message,
            "write a quoted check string: '\"\"' allows everyone, '\"!\"' nobody",
        )
    return Problem(
        "PG303",
        Severity.ERROR,
        entry.value_pos,
        f"oslo.policy cannot parse (all of) '{entry.name}': {entry.check_str!r}; "
        "it treats the unparsable part as '!' (never true)",
        "check 'and'/'or'/'not', parentheses and 'kind:match' pairs",
    )


_BANG = re.compile(r"(?<![\w:])!(?![\w])")


def parse_check(text: str) -> tuple[_checks.BaseCheck, bool]:
    """oslo.policy's parse of ``text`` and whether part of it was unparsable.

    oslo.policy logs a traceback and substitutes ``!`` (a FalseCheck) for what
    it cannot parse; more FalseChecks than written ``!`` atoms means it did.
    """
    parser_log = logging.getLogger(_parser.__name__)
    was_disabled, parser_log.disabled = parser_log.disabled, True
    try:
        check = _parser.parse_rule(text)
    finally:
        parser_log.disabled = was_disabled
    falses = sum(1 for c in walk(check) if isinstance(c, _checks.FalseCheck))
    return check, falses > len(_BANG.findall(text))


def walk(check: _checks.BaseCheck):
    """Every node of a check tree (no ``rule:`` following), without recursion."""
    stack = [check]
    while stack:
        c = stack.pop()
        yield c
        stack.extend(getattr(c, "rules", ()) or ())
        inner = getattr(c, "rule", None)
        if isinstance(inner, _checks.BaseCheck):
            stack.append(inner)


def read_policy_set(
    policy_file: str | None, policy_dirs: Iterable[str] = DEFAULT_POLICY_DIRS
) -> list[PolicySource]:
    """Every file of the set, read (see :func:`policy_set_files`)."""
    return [read_policy_source(p) for p in policy_set_files(policy_file, policy_dirs)]


def merged_entries(sources: Iterable[PolicySource]) -> dict[str, PolicyEntry]:
    """Name -> the entry in force (later files override earlier ones, as in oslo.policy)."""
    merged: dict[str, PolicyEntry] = {}
    for source in sources:
        merged.update(source.entries)
    return merged


# -- rule: references -------------------------------------------------------


@dataclass
class RuleGraph:
    """Depth and cycles of a rule table, computed without recursion."""

    #: name -> deepest nesting (and/or/not and rule: hops, 1 for a single check);
    #: names on a cycle are missing.
    depth: dict[str, int]
    #: each cycle once, as the list of names in reference order
    cycles: list[list[str]]
    #: name -> names it references directly (``rule:x``), in order
    refs: dict[str, list[str]]


def _inner(check: _checks.BaseCheck) -> tuple[int, list[tuple[str, int]]]:
    """Nesting depth of one check tree and its ``rule:`` references with their level."""
    deepest = 0
    refs: list[tuple[str, int]] = []
    stack = [(check, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, oslo_policy.RuleCheck):
            refs.append((node.match, level))
        stack.extend((r, level + 1) for r in getattr(node, "rules", ()) or ())
        inner = getattr(node, "rule", None)
        if isinstance(inner, _checks.BaseCheck):
            stack.append((inner, level + 1))
    return deepest, refs


#: _inner() of check trees seen before (registered defaults and cached files are
#: the same objects from one load to the next); the check is kept with its answer.
_INNER: OrderedDict[int, tuple[_checks.BaseCheck, tuple[int, list[tuple[str, int]]]]] = (
    OrderedDict()
)
_INNER_MAX = 8192


def _inner_cached(check: _checks.BaseCheck) -> tuple[int, list[tuple[str, int]]]:
    with _SOURCES_LOCK:
        hit = _INNER.get(id(check))
        if hit is not None and hit[0] is check:
            return hit[1]
    answer = _inner(check)
    with _SOURCES_LOCK:
        _INNER[id(check)] = (check, answer)
        while len(_INNER) > _INNER_MAX:
            _INNER.popitem(last=False)
    return answer


def rule_graph(checks: Mapping[str, _checks.BaseCheck]) -> RuleGraph:
    """Depths and cycles of every rule in ``checks`` (undefined references count 0)."""
    inner = {name: _inner_cached(check) for name, check in checks.items()}
    refs = {name: [r for r, _ in inner[name][1]] for name in checks}
    depth: dict[str, int] = {}
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    on_cycle: set[str] = set()
    for root in sorted(checks):
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(refs[root])]
        state[root] = 1
        while iters:
            current = path[-1]
            nxt = next(iters[-1], None)
            if nxt is None:
                iters.pop()
                path.pop()
                state[current] = 2
                if current in on_cycle:
                    continue
                own, hops = inner[current]
                best = own
                for ref, level in hops:
                    if ref in on_cycle:
                        on_cycle.add(current)
                        break
                    best = max(best, level + depth.get(ref, 0))
                else:
                    depth[current] = best
                continue
            if nxt not in checks:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    cycles.append(cycle)
                on_cycle.update(cycle)
                continue
            if nxt in state:
                continue
            state[nxt] = 1
            path.append(nxt)
            iters.append(iter(refs[nxt]))
    return RuleGraph(depth, cycles, refs)
