"""The peers benchmark's two read tools, as plain functions over the demo store: what each
framework's tool activities call, so every kind reads the same rows the same way."""

from __future__ import annotations

import json
import os
from functools import cache

from temporalio import activity

from tiergate.demo import SupportStore

#: Where the benchmark seeded the demo store (set before any worker starts).
STORE_ENV = "TIERGATE_PEERS_STORE"


@cache
def _store() -> SupportStore:
    return SupportStore(os.environ[STORE_ENV])


def read_ticket(ticket_id: str) -> str:
    """Read a support ticket by its id."""
    return json.dumps(_store().read_ticket(ticket_id), sort_keys=True)


def get_status(order_id: str) -> str:
    """Get an order's shipping and payment status by its id."""
    return json.dumps(_store().order_status(order_id), sort_keys=True)


@activity.defn(name="plain__crm.read_ticket")
def plain_read_ticket(ticket_id: str) -> str:
    """The bare loop's tool activity: the read, nothing else."""
    return read_ticket(ticket_id)


@activity.defn(name="plain__orders.get_status")
def plain_get_status(order_id: str) -> str:
    return get_status(order_id)


PLAIN_TOOLS = [plain_read_ticket, plain_get_status]
