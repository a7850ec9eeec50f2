"""`tiergate approvers|approvals|reviews` as a person runs them, against a real server."""

from __future__ import annotations

import json
import re
import stat

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import Harness, call, final, scripted
from tests.test_cli import tiergate
from tiergate.activities import ReviewStore
from tiergate.approvals import dev_admin
from tiergate.core import ReviewItem

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)


def cli_env(env: WorkflowEnvironment, h: Harness) -> dict[str, str]:
    return {
        "TIERGATE_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TIERGATE_TASK_QUEUE": h.task_queue,
        "TIERGATE_HOME": str(h.home),
    }


async def test_approvers_add_list_revoke(harness: Harness) -> None:
    env = {"TIERGATE_HOME": str(harness.home)}
    code, out = await tiergate(
        "approvers", "add", "alice", "--role", "support_lead", "--role", "finance", env=env
    )
    assert code == 0, out
    # No key yet: alice answers on the web page, with a passkey she enrolls there.
    assert "none yet" in out
    assert not (harness.home / "keys" / "alice.pem").exists()
    code, out = await tiergate("approvers", "add", "bob", "--role", "x", "--demo-key", env=env)
    assert code == 0, out
    key = harness.home / "keys" / "bob.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "demo key" in out
    code, out = await tiergate("approvers", "revoke", "bob", env=env)
    assert code == 0, out
    code, out = await tiergate("approvers", "add", "alice", "--role", "x", env=env)
    assert (code, "already registered" in out) == (2, True)
    code, out = await tiergate("approvers", "list", "--json", env=env)
    listed = json.loads(out)
    assert [(a["name"], a["roles"], a["active"], a["demo_key"]) for a in listed] == [
        ("alice", ["finance", "support_lead"], True, False),
        ("bob", ["x"], False, True),
    ]
    # Endorsed by the home's dev administrator, which these settings do not trust.
    assert listed[0]["endorsement"]["by"].startswith("ed25519:")
    assert listed[0]["trusted"] is False
    trusted_env = {**env, "TIERGATE_REGISTRY_ADMINS": json.dumps([dev_admin(harness.home)])}
    code, out = await tiergate("approvers", "list", "--json", env=trusted_env)
    assert json.loads(out)[0]["trusted"] is True
    assert "PRIVATE" not in out
    code, out = await tiergate("approvers", "revoke", "alice", env=env)
    assert code == 0
    code, out = await tiergate("approvers", "list", "--json", env=env)
    assert json.loads(out)[0]["active"] is False


async def test_list_show_approve_and_exit_codes(env: WorkflowEnvironment, harness: Harness) -> None:
    h = harness
    h.registry.add("lead", ["support_lead"], demo_key=True)
    h.registry.add("p1", ["privacy_officer"], demo_key=True)
    agent = h.add_agent("a")
    settings = cli_env(env, h)
    async with h.worker():
        handle = await h.start(
            agent, input={}, requester="svc", model_overrides=scripted(REFUND_400, final())
        )
        await h.pending(handle)

        code, out = await tiergate("approvals", "list", "--json", env=settings)
        assert code == 0
        assert handle.id in [p["run_id"] for p in json.loads(out)]
        code, out = await tiergate("approvals", "list", env=settings)
        assert code == 0
        assert "amount_usd=400.00" in out

        code, out = await tiergate("approvals", "show", handle.id, env=settings)
        assert code == 0
        assert "payments.issue_refund" in out
        assert "refund_cap" in out

        code, out = await tiergate("approvals", "approve", handle.id, "--as", "p1", env=settings)
        assert code == 3, out
        assert "not_authorized" in out

        code, out = await tiergate("approvals", "deny", handle.id, "--as", "lead", env=settings)
        assert code == 3
        assert "reason_required" in out

        code, out = await tiergate(
            "approvals", "approve", handle.id, "--as", "lead", "--edit", "{bad", env=settings
        )
        assert code == 2

        code, out = await tiergate(
            "approvals",
            "approve",
            handle.id,
            "--as",
            "lead",
            "--justification",
            "verified",
            env=settings,
        )
        assert code == 0, out
        assert "approved" in out
        await handle.result()

    code, out = await tiergate("approvals", "approve", handle.id, "--as", "lead", env=settings)
    assert code == 4, out

    code, out = await tiergate("approvals", "audit", handle.id, env=settings)
    assert code == 0, out
    assert "verified" in out
    history_file = h.home / "run.json"
    history_file.write_text((await h.history(handle.id)).to_json())
    code, out = await tiergate(
        "approvals", "audit", handle.id, "--history", str(history_file), "--json"
    )
    assert code == 0
    assert json.loads(out)["ok"] is True


async def test_reviews_list_show_flag(harness: Harness) -> None:
    store = ReviewStore(harness.settings.database())
    item = ReviewItem(
        run_id="r-1",
        agent="a",
        step=3,
        tool="payments.issue_refund",
        arguments={"order_id": "ORD-1", "amount_usd": "20.00", "reason_code": "damaged"},
        call_digest="d" * 64,
        policy_ids=["refunds"],
        policy_version="sha256:x",
        reason="asked",
        result_preview="{}",
    )
    review_id = store.add(item)
    assert store.add(item) == review_id
    env = {"TIERGATE_HOME": str(harness.home)}
    code, out = await tiergate("reviews", "list", "--json", env=env)
    assert [r["id"] for r in json.loads(out)] == [review_id]
    code, out = await tiergate("reviews", "show", str(review_id), env=env)
    assert json.loads(out)["item"]["tool"] == "payments.issue_refund"
    code, out = await tiergate(
        "reviews", "flag", str(review_id), "--as", "qa", "--reason", "amount looks off", env=env
    )
    assert code == 0, out
    code, out = await tiergate("reviews", "list", "--json", env=env)
    assert json.loads(out) == []
    code, out = await tiergate("reviews", "list", "--all", "--json", env=env)
    assert json.loads(out)[0]["verdict"] == "problem"
    code, out = await tiergate("reviews", "show", "999", env=env)
    assert code == 2


async def test_an_approver_s_private_key_stays_on_their_machine(
    env: WorkflowEnvironment, harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue #20, item 5 (CLI): `keygen` on the approver's machine, the administrator
    registers the public key only, the approver signs with their own file."""
    h = harness
    laptop = tmp_path_factory.mktemp("alice-laptop")  # not under the server's home
    code, out = await tiergate(
        "approvers",
        "keygen",
        "alice",
        "--out",
        str(laptop / "alice.pem"),
        env={"HOME": str(laptop)},
    )
    assert code == 0, out
    public = re.search(r"public key: (\S+)", out)
    assert public is not None
    assert stat.S_IMODE((laptop / "alice.pem").stat().st_mode) == 0o600
    settings = cli_env(env, h)
    code, out = await tiergate(
        "approvers",
        "add",
        "alice",
        "--role",
        "support_lead",
        "--public-key",
        public.group(1),
        env=settings,
    )
    assert code == 0, out
    assert not (h.home / "keys" / "alice.pem").exists()
    assert list(h.home.rglob("alice*")) == []  # nothing of alice's key on the server
    code, out = await tiergate(
        "approvers",
        "add",
        "mallory",
        "--role",
        "support_lead",
        "--public-key",
        public.group(1),
        env=settings,
    )
    assert (code, "registered already" in out) == (2, True)
    agent = h.add_agent("a")
    async with h.worker():
        handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
        await h.pending(handle)
        code, out = await tiergate("approvals", "approve", handle.id, "--as", "alice", env=settings)
        assert code == 2, out  # no key on the server to sign with
        assert "has no demo key on this host" in out
        code, out = await tiergate(
            "approvals",
            "approve",
            handle.id,
            "--as",
            "alice",
            "--key",
            str(laptop / "alice.pem"),
            env=settings,
        )
        assert code == 0, out
        summary = await handle.result()
    assert summary.outcome.value == "completed"
    assert len(h.store.rows("refunds")) == 1
