"""Temporal visibility: the search attributes that list runs waiting for approvers."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tiergate.errors import ConfigError


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register tiergate's search attributes where they are missing (needs operator rights)."""
    # Imported here: the workflow package brings OpenTelemetry, which a client that only
    # reads histories (`runs show`) should not pay for.
    from tiergate.workflows import SEARCH_ATTRIBUTES

    wanted = {key.name: int(key.indexed_value_type) for key in SEARCH_ATTRIBUTES}
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(listed.custom_attributes)
    except RPCError as error:
        # The time-skipping test server can add search attributes but not list them.
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {name: kind for name, kind in wanted.items() if name not in known}
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )
    except RPCError as error:
        raise ConfigError(
            f"cannot register search attributes {sorted(missing)}: {error.message}",
            fix="create them once: "
            + "; ".join(
                f"temporal operator search-attribute create --name {k.name} --type "
                f"{k.indexed_value_type.name.title().replace('_', '')}"
                for k in SEARCH_ATTRIBUTES
            ),
        ) from None
