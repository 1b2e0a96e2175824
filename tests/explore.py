"""Hypothesis runs that explore and prove they reached something.

Why: with ``derandomize=True`` every run tried the same cases forever, and
nothing showed how many generated cases reached the interesting paths (an
accepted PATCH, an accepted load, a list match). Here:

* :data:`SEED`: one seed per test run, random unless ``PROPGUARD_HYPOTHESIS_SEED``
  gives it; ``tests/conftest.py`` prints it in the header and under every
  failed test of a module using this helper, so a failure is replayed with
  ``PROPGUARD_HYPOTHESIS_SEED=<seed> pytest <test>``. The fixed ``@example``
  lists still run first, every time.
* :class:`Reach`: counts what generated examples reached (also as
  Hypothesis events, for ``--hypothesis-show-statistics``) and fails the
  test when a count is below its floor.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import event, seed, settings

SEED = int(os.environ.get("PROPGUARD_HYPOTHESIS_SEED") or secrets.randbelow(2**32))
REPLAY = f"PROPGUARD_HYPOTHESIS_SEED={SEED}"

T = TypeVar("T", bound=Callable[..., Any])


def exploring(**kwargs: Any) -> Callable[[T], T]:
    """``settings(**kwargs)`` without derandomizing or an example database, seeded with
    :data:`SEED`; put it above ``@given`` (and its ``@example`` list)."""

    def decorate(test: T) -> T:
        return seed(SEED)(settings(derandomize=False, database=None, **kwargs)(test))

    return decorate


class Explicit(list):
    """A fixed ``@example`` sequence: run every time, but not counted as reach."""


class Reach:
    """What the generated examples reached: ``hit(name)`` counts, ``require(name=floor)`` fails
    a run that reached less."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.counting = True

    def hit(self, name: str) -> None:
        event(name)
        if self.counting:
            self.counts[name] += 1

    def require(self, **floors: int) -> None:
        short = {
            name: self.counts[name] for name, floor in floors.items() if self.counts[name] < floor
        }
        assert not short, (
            f"the generated examples reached too little: {short} below the floors {floors} "
            f"(all counts: {dict(self.counts)}; replay with {REPLAY})"
        )
