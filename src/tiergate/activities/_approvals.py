"""Activities of the approval path: the registry snapshot and live status, the overdue
notification hook, and the review queue."""

from __future__ import annotations

import httpx
from temporalio import activity

from tiergate.activities._reviews import ReviewStore
from tiergate.approvals import ApproverRegistry
from tiergate.core import (
    APPROVER_STATUS_ACTIVITY,
    APPROVERS_SNAPSHOT_ACTIVITY,
    NOTIFY_OVERDUE_ACTIVITY,
    REVIEW_ENQUEUE_ACTIVITY,
    ApproverStatus,
    ApproverStatusInput,
    NotifyResult,
    OverdueNotice,
    RegistryRequest,
    RegistrySnapshot,
    ReviewEnqueued,
    ReviewItem,
)


class ApprovalActivities:
    """``admins``: the administrator public keys whose endorsed registry entries count."""

    def __init__(
        self,
        registry: ApproverRegistry,
        notify_url: str | None,
        reviews: ReviewStore,
        admins: list[str],
    ) -> None:
        self.registry = registry
        self.admins = admins
        self.notify_url = notify_url
        self.reviews = reviews

    @activity.defn(name=APPROVERS_SNAPSHOT_ACTIVITY)
    def snapshot(self, request: RegistryRequest) -> RegistrySnapshot:
        """The registry pinned for a wait, endorsed entries only; it goes into history so
        approvals verify offline."""
        return self.registry.trusted(self.admins)

    @activity.defn(name=APPROVER_STATUS_ACTIVITY)
    def status(self, request: ApproverStatusInput) -> ApproverStatus:
        approver = self.registry.trusted(self.admins).approvers.get(request.name)
        if approver is None:
            return ApproverStatus(known=False, active=False)
        keys = [k for k in (approver.key_id, *(p.key_id for p in approver.passkeys)) if k]
        return ApproverStatus(known=True, active=approver.active, key_id=approver.key_id, keys=keys)

    @activity.defn(name=NOTIFY_OVERDUE_ACTIVITY)
    def notify_overdue(self, notice: OverdueNotice) -> NotifyResult:
        if not self.notify_url:
            activity.logger.warning("approval overdue (no notify hook configured): %s", notice)
            return NotifyResult(delivered=False, detail="no TIERGATE_NOTIFY_URL configured; logged")
        response = httpx.post(self.notify_url, json=notice.model_dump(), timeout=10)
        response.raise_for_status()
        return NotifyResult(delivered=True, detail=f"HTTP {response.status_code}")

    @activity.defn(name=REVIEW_ENQUEUE_ACTIVITY)
    def enqueue_review(self, item: ReviewItem) -> ReviewEnqueued:
        return ReviewEnqueued(review_id=self.reviews.add(item))
