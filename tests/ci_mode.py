"""The one place that decides whether the tests run "in CI", and what CI refuses.

Why: "fail, never skip, in CI" was checked in five places with two
conditions (``CI`` set, or ``CI == "true"``) and not at all elsewhere. Now
``CI`` set to anything (even empty) means CI; ``tests/conftest.py`` turns
every skip into a failure there and refuses the knobs that shrink a check.
"""

from __future__ import annotations

import os

#: Environment variables that make a check smaller or self-fulfilling, with why;
#: refused (the session does not start) under CI.
SHRINKING_KNOBS: dict[str, str] = {
    "PROPGUARD_PROXY_STREAM_MIB": "shrinks the 1 GiB proxied transfer, so the memory bound "
    "holds trivially",
    "PROPGUARD_DIFFERENTIAL_EXAMPLES": "shrinks the lint differential's example count",
    "PROPGUARD_UPDATE_GOLDEN": "writes the lint golden files from the run they are compared in",
}


def in_ci() -> bool:
    """True when ``CI`` is set to anything: skips fail and shrinking knobs are refused."""
    return "CI" in os.environ


def shrinking_knobs_set() -> list[str]:
    """The shrinking knobs set in this environment, each with why it is refused in CI."""
    return [f"{name} ({why})" for name, why in SHRINKING_KNOBS.items() if name in os.environ]
