"""The demo support domain's tools: tickets, orders, refunds, email and user data.

Argument models are strict (extra fields refused, bounded strings) because a proposal that
does not fit its schema must never reach a backend.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiergate.core import ToolKind
from tiergate.tools import Tool, ToolRegistry

# ASCII digits only: `\d` also matches other scripts' digits ("ORD-５００１"), a look-alike
# id that passed the schema before the hostile-input drill (tests/test_hostile_input.py).
TicketId = Annotated[str, Field(pattern=r"^T-[0-9]{1,10}$", max_length=16)]
OrderId = Annotated[str, Field(pattern=r"^ORD-[0-9]{1,10}$", max_length=16)]
CustomerId = Annotated[str, Field(pattern=r"^C-[0-9]{1,10}$", max_length=16)]
UserId = Annotated[str, Field(pattern=r"^U-[0-9]{1,10}$", max_length=16)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadTicketArgs(_Args):
    ticket_id: TicketId


class UpdateTicketArgs(_Args):
    ticket_id: TicketId
    status: Literal["open", "pending", "resolved", "escalated"]
    reply: Annotated[str, Field(max_length=4000)] = ""


class GetOrderStatusArgs(_Args):
    order_id: OrderId


class IssueRefundArgs(_Args):
    order_id: OrderId
    amount_usd: Annotated[Decimal, Field(gt=0, le=Decimal("1000000"), multiple_of=Decimal("0.01"))]
    reason_code: Literal["damaged", "not_delivered", "late", "wrong_item", "goodwill", "other"]

    @field_validator("amount_usd")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        # One canonical spelling per amount, so equal refunds get equal call digests.
        return value.quantize(Decimal("0.01"))


class SendEmailArgs(_Args):
    to: Annotated[str, Field(pattern=r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}$", max_length=254)]
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=8000)]


class ChangePlanArgs(_Args):
    customer_id: CustomerId
    plan: Literal["basic", "plus", "pro"]


class DeleteUserDataArgs(_Args):
    user_id: UserId
    justification: Annotated[str, Field(min_length=1, max_length=1000)]


SUPPORT_TOOLS = ToolRegistry.of(
    [
        Tool.of("crm.read_ticket", 0, ToolKind.READ, ReadTicketArgs, (), "Read a support ticket."),
        Tool.of(
            "crm.update_ticket",
            1,
            ToolKind.WRITE,
            UpdateTicketArgs,
            ("reply",),
            "Set a ticket's status and post a reply to the customer.",
            honors_idempotency_key=True,
        ),
        Tool.of("orders.get_status", 0, ToolKind.READ, GetOrderStatusArgs, (), "Order status."),
        Tool.of(
            "payments.issue_refund",
            2,
            ToolKind.WRITE,
            IssueRefundArgs,
            (),
            "Refund an order.",
            irreversible=True,
            honors_idempotency_key=True,
        ),
        Tool.of(
            "email.send",
            1,
            ToolKind.WRITE,
            SendEmailArgs,
            ("body",),
            "Send an email.",
            irreversible=True,
            honors_idempotency_key=True,
        ),
        Tool.of(
            "users.delete_data",
            4,
            ToolKind.WRITE,
            DeleteUserDataArgs,
            (),
            "Irreversibly delete a user's personal data.",
            irreversible=True,
            honors_idempotency_key=True,
        ),
        # The billing vendor takes no idempotency key: a retry after a lost response could
        # change the plan twice (and bill twice), so this write is never retried by itself.
        Tool.of(
            "billing.change_plan",
            3,
            ToolKind.WRITE,
            ChangePlanArgs,
            (),
            "Move a customer to another plan (the billing vendor has no idempotency keys).",
        ),
    ]
)
