"""The search attributes a run carries, as Temporal's typed keys.

Visibility lists runs by them without asking a worker: waiting for approvers
(`tiergate approvals list`), the agent, shadows, and the rollout variant a run was routed to.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from tiergate.core import (
    AGENT_SEARCH_ATTRIBUTE,
    AGENT_VERSION_SEARCH_ATTRIBUTE,
    PENDING_APPROVAL_SEARCH_ATTRIBUTE,
    SHADOW_SEARCH_ATTRIBUTE,
    VARIANT_SEARCH_ATTRIBUTE,
)

PENDING_APPROVAL_ATTRIBUTE = SearchAttributeKey.for_bool(PENDING_APPROVAL_SEARCH_ATTRIBUTE)
AGENT_ATTRIBUTE = SearchAttributeKey.for_keyword(AGENT_SEARCH_ATTRIBUTE)
#: Set at start on shadow re-runs (`tiergate shadow`), so reports can leave them out.
SHADOW_ATTRIBUTE = SearchAttributeKey.for_bool(SHADOW_SEARCH_ATTRIBUTE)
#: Set at start by rollouts: the agent version a run was routed to, and the variant.
AGENT_VERSION_ATTRIBUTE = SearchAttributeKey.for_keyword(AGENT_VERSION_SEARCH_ATTRIBUTE)
VARIANT_ATTRIBUTE = SearchAttributeKey.for_keyword(VARIANT_SEARCH_ATTRIBUTE)
SEARCH_ATTRIBUTES = (
    PENDING_APPROVAL_ATTRIBUTE,
    AGENT_ATTRIBUTE,
    SHADOW_ATTRIBUTE,
    AGENT_VERSION_ATTRIBUTE,
    VARIANT_ATTRIBUTE,
)
