"""The parsed rule model shared by the engine, the linter and the explain tools.

A rules file is parsed once into :class:`RulesDocument`; every value keeps the
file position it came from, so that load errors, lint findings and decisions
can all name ``file:line:col``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

OPERATIONS: tuple[str, ...] = ("create", "read", "update", "delete")

EVERYONE = "@"
NOBODY = "!"
SERVICE_PREFIX = "service:"


class RuleFormat(enum.StrEnum):
    """How the values of a rules file are read (Glance's two formats)."""

    ROLES = "roles"
    POLICIES = "policies"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a file; lines and columns count from 1."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a rules file, with a stable code (``PG1xx`` errors)."""

    code: str
    severity: Severity
    position: Position
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.position}: {self.code} {self.severity} {self.message}"


def role_atom(atom: str) -> tuple[str, bool]:
    """``' service:Nova'`` -> ``('Nova', True)``, ``'member'`` -> ``('member', False)``.

    The spelling is kept (the linter reports role names as written).
    """
    stripped = atom.strip()
    if stripped.lower().startswith(SERVICE_PREFIX):
        return stripped[len(SERVICE_PREFIX) :].strip(), True
    return stripped, False


@dataclass(frozen=True, slots=True)
class Conjunction:
    """One role entry: every user role and every service role listed must be held.

    ``member+service:nova`` is ``Conjunction({'member'}, {'nova'})``.
    """

    user_roles: frozenset[str]
    service_roles: frozenset[str]

    @classmethod
    def parse(cls, entry: str) -> Conjunction:
        """``'member+service:nova'`` -> ``Conjunction({'member'}, {'nova'})``, lower-cased.

        The one reader of propguard's role syntax (rules files, ``explain``,
        ``matrix``, ``lint``). Raises ``ValueError`` on an empty atom, ``@`` or
        ``!`` inside a conjunction, or a role name with white space.
        """
        users: set[str] = set()
        services: set[str] = set()
        for atom in entry.split("+"):
            name, service = role_atom(atom)
            if not name or name in ("@", "!") or any(ch.isspace() for ch in name):
                raise ValueError(f"malformed role entry {entry!r}")
            (services if service else users).add(name.lower())
        return cls(frozenset(users), frozenset(services))

    def __str__(self) -> str:
        parts = sorted(self.user_roles) + [SERVICE_PREFIX + r for r in sorted(self.service_roles)]
        return "+".join(parts)


@dataclass(frozen=True, slots=True)
class OpValue:
    """The value of one operation key of a section, as written and as understood."""

    op: str
    raw: str
    position: Position  # of the key
    value_position: Position  # of the value's first character
    everyone: bool = False
    nobody: bool = False
    entries: tuple[Conjunction, ...] = ()  # roles format
    policy: str | None = None  # policies format: the rule name

    @property
    def empty(self) -> bool:
        return not (self.everyone or self.nobody or self.entries or self.policy)


@dataclass(frozen=True, slots=True)
class Section:
    """A ``[regex]`` section; ``index`` is its place in file order (from 0)."""

    index: int
    pattern: str
    position: Position
    values: dict[str, OpValue] = field(repr=False, compare=False)
    builtin: bool = False

    def describe(self) -> str:
        where = "built in" if self.builtin else f"line {self.position.line}"
        return f"[{self.pattern}] ({where})"


@dataclass(slots=True)
class RawOption:
    """An ``option = value`` line as the INI reader saw it (before interpretation)."""

    name: str
    value: str
    position: Position
    value_position: Position


@dataclass(slots=True)
class RawSection:
    name: str
    position: Position
    options: dict[str, RawOption] = field(default_factory=dict)


@dataclass(slots=True)
class RulesDocument:
    """A parsed rules file: its sections in file order and every problem found."""

    path: str
    format: RuleFormat
    sections: list[Section] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    raw_sections: list[RawSection] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]


class RulesError(Exception):
    """A rules file that cannot be used: names the file, line and problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(f"{first.position}: {first.code} {first.message}{more}")
