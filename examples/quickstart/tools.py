"""The quickstart's tools: two functions of a billing service, behind tiergate's gate.

`tiergate dev --toolset tools:acme --agents .` serves them. The "backend" is a dict in the
worker's memory, so the example needs nothing else; a real tool calls your service with
``call.credential`` and passes ``call.idempotency_key`` on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tiergate import ToolCall, Toolset

acme = Toolset("acme")  # its tools are acme.get_invoice and acme.refund

INVOICES = {"INV-1": Decimal("900.00"), "INV-2": Decimal("45.00")}
REFUNDS: dict[str, dict[str, Any]] = {}  # idempotency key -> the refund made under it


class RefundArgs(BaseModel):
    """What a refund takes; extra fields are refused before the function is called."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_id: Annotated[str, Field(pattern=r"^INV-[0-9]{1,8}$")]
    amount_usd: Annotated[Decimal, Field(gt=0, le=Decimal("100000"), multiple_of=Decimal("0.01"))]


@acme.tool(tier=0)
def get_invoice(invoice_id: str) -> dict[str, Any]:
    """Read one invoice's total."""
    total = INVOICES.get(invoice_id)
    return {"invoice_id": invoice_id, "total_usd": str(total) if total else None}


@acme.tool(tier=2, kind="write", irreversible=True, honors_idempotency_key=True)
def refund(args: RefundArgs, call: ToolCall) -> dict[str, Any]:
    """Refund part of an invoice, once per idempotency key."""
    made = REFUNDS.setdefault(
        call.idempotency_key,
        {"invoice_id": args.invoice_id, "amount_usd": str(args.amount_usd), "run": call.run_id},
    )
    return {"refunded": made}
