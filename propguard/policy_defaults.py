"""propguard's oslo.policy defaults (``oslo.policy.policies`` entry point ``propguard``).

For policies-format rules files, with ``policy_namespaces = glance, propguard``
(or ``propguard`` alone). Every name is prefixed ``propguard:`` so the
namespace can be registered next to Glance's without a duplicate-name clash
(Glance already defines ``context_is_admin``). Render them with::

    oslopolicy-sample-generator --namespace propguard

Service roles (``service_roles:``) are those of a *confirmed* service token
that carries one of ``service_token_roles``; see docs/filter.md, "What
propguard trusts".
"""

from __future__ import annotations

from oslo_policy import policy

ADMIN = "propguard:admin"
SERVICE_RELAY = "propguard:service_relay"
ADMIN_OR_SERVICE_RELAY = "propguard:admin_or_service_relay"
READER_VIA_SERVICE = "propguard:reader_via_service"

_IMAGE = [{"path": "/v2/images/{image_id}", "method": "PATCH"}]
_READ = [
    {"path": "/v2/images/{image_id}", "method": "GET"},
    {"path": "/v2/images", "method": "GET"},
]

RULES: list[policy.RuleDefault] = [
    policy.RuleDefault(
        ADMIN,
        "role:admin",
        description="The caller's own token has the admin role.",
    ),
    policy.RuleDefault(
        SERVICE_RELAY,
        "service_roles:service",
        description="The request was relayed by a service (e.g. Nova) with a confirmed service "
        "token carrying the 'service' role. The user's own roles do not count here.",
    ),
    policy.DocumentedRuleDefault(
        ADMIN_OR_SERVICE_RELAY,
        f"rule:{ADMIN} or rule:{SERVICE_RELAY}",
        description="Change a protected image property: an admin, or a service relaying a "
        "user's request (e.g. Nova writing instance properties on a snapshot).",
        operations=_IMAGE,
    ),
    policy.DocumentedRuleDefault(
        READER_VIA_SERVICE,
        f"role:reader and rule:{SERVICE_RELAY}",
        description="Read a service-only image property: the user must hold 'reader' *and* the "
        "request must come through a service token; a service token alone never widens what "
        "the user sees.",
        operations=_READ,
    ),
]


def list_rules() -> list[policy.RuleDefault]:
    """The defaults, for oslo.policy's generators and for propguard's own Enforcer."""
    return list(RULES)
