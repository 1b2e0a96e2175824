"""``max_lifetime`` tolerates exactly one ``leeway``, no more.

Why: the other lifetime test runs with ``leeway = 0``, so a validator that
allowed ``max_lifetime + 2 * leeway`` (or ignored the leeway) passed it. Here
the leeway is not zero and the token's lifetime sits on each side of the one
boundary, ``iat`` fixed so the wall clock plays no part in the lifetime.
"""

from __future__ import annotations

import time

import pytest
import webob

MAX_LIFETIME, LEEWAY = 3600, 30


def _status(middleware, token: str) -> int:
    request = webob.Request.blank("/v2/images", headers={"X-Auth-Token": token})
    return request.get_response(middleware).status_int


@pytest.mark.parametrize(
    ("lifetime", "status"),
    [
        (MAX_LIFETIME, 200),
        (MAX_LIFETIME + LEEWAY, 200),  # the leeway is granted once
        (MAX_LIFETIME + LEEWAY + 1, 401),  # and not twice
        (MAX_LIFETIME + 2 * LEEWAY, 401),
    ],
)
def test_max_lifetime_allows_one_leeway(build, app, rsa_options, token, lifetime, status):
    middleware = build({**rsa_options, "max_lifetime": str(MAX_LIFETIME), "leeway": str(LEEWAY)})
    issued = int(time.time())
    assert _status(middleware, token(now=issued, expires_in=lifetime)) == status
