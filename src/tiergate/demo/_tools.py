"""The demo support domain's tools: tickets, orders, refunds, email and user data.

They are six `Toolset`s (``crm``, ``orders``, ``payments``, ``email``, ``users``,
``billing``), written as any team writes its own: typed functions on a store the toolsets
are built around (`support_toolsets`). Argument models are strict (extra fields refused,
bounded strings) because a proposal that does not fit its schema must never reach a backend.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiergate.demo._backend import SupportDesk
from tiergate.demo._store import SupportStore
from tiergate.tools import Replayed, ToolCall, ToolRegistry, Toolset

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


Answer = dict[str, Any] | Replayed


def support_toolsets(desk: SupportDesk) -> tuple[Toolset, ...]:
    """The six support toolsets, acting on the stores ``desk`` picks per call."""
    crm, orders, payments, email, users, billing = (
        Toolset(name) for name in ("crm", "orders", "payments", "email", "users", "billing")
    )

    @crm.tool(tier=0)
    def read_ticket(args: ReadTicketArgs, call: ToolCall) -> dict[str, Any]:
        """Read a support ticket."""
        return desk.store(call).read_ticket(args.ticket_id)

    @crm.tool(tier=1, kind="write", emits=("reply",), honors_idempotency_key=True)
    def update_ticket(args: UpdateTicketArgs, call: ToolCall) -> Answer:
        """Set a ticket's status and post a reply to the customer."""
        return desk.write(
            "crm.update_ticket",
            call,
            args,
            lambda conn: SupportStore.update_ticket(conn, args.ticket_id, args.status, args.reply),
        )

    # Policies can ask which orders the run checked and refunded, how much it refunded and
    # whom it emailed (`context.session`).
    @orders.tool(
        tier=0,
        name="get_status",
        session_keys=("order_id",),
        # A carrier that has not updated, or a status nobody knows, is no answer yet.
        ambiguous_when={"status": ("pending_carrier_update", "unknown")},
    )
    def order_status(args: GetOrderStatusArgs, call: ToolCall) -> dict[str, Any]:
        """Order status."""
        return desk.store(call).order_status(args.order_id)

    @payments.tool(
        tier=2,
        kind="write",
        irreversible=True,
        honors_idempotency_key=True,
        session_keys=("order_id",),
        session_sums=("amount_usd",),
    )
    def issue_refund(args: IssueRefundArgs, call: ToolCall) -> Answer:
        """Refund an order."""
        return desk.write(
            "payments.issue_refund",
            call,
            args,
            lambda conn: SupportStore.issue_refund(
                conn, call.idempotency_key, args.order_id, args.amount_usd, args.reason_code
            ),
        )

    @email.tool(
        tier=1,
        kind="write",
        name="send",
        emits=("body",),
        irreversible=True,
        honors_idempotency_key=True,
        session_keys=("to",),
    )
    def send_email(args: SendEmailArgs, call: ToolCall) -> Answer:
        """Send an email."""
        return desk.write(
            "email.send",
            call,
            args,
            lambda conn: SupportStore.send_email(
                conn, call.idempotency_key, args.to, args.subject, args.body
            ),
        )

    @users.tool(tier=4, kind="write", irreversible=True, honors_idempotency_key=True)
    def delete_data(args: DeleteUserDataArgs, call: ToolCall) -> Answer:
        """Irreversibly delete a user's personal data."""
        return desk.write(
            "users.delete_data",
            call,
            args,
            lambda conn: SupportStore.delete_user_data(conn, args.user_id),
        )

    # The billing vendor takes no idempotency key: a retry after a lost response could
    # change the plan twice (and bill twice), so this write is never retried by itself.
    @billing.tool(tier=3, kind="write")
    def change_plan(args: ChangePlanArgs, call: ToolCall) -> Answer:
        """Move a customer to another plan (the billing vendor has no idempotency keys)."""
        return desk.write(
            "billing.change_plan",
            call,
            args,
            lambda conn: SupportStore.change_plan(
                conn, call.idempotency_key, args.customer_id, args.plan
            ),
            once=False,
        )

    return crm, orders, payments, email, users, billing


#: The support tools' specs (a desk with no store of its own: for reading specs only).
SUPPORT_TOOLS = ToolRegistry.of(
    tool for toolset in support_toolsets(SupportDesk(None)) for tool in toolset
)
