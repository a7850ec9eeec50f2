"""Issue #20, item 6: the registry has an owner.

Adding, revoking and re-keying approvers and operators is signed by an administrator key;
workers and the page take only entries an administrator they trust endorsed, so write
access to `approvers.json` alone adds nobody, and every change is kept with who and when.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import Harness, call, final, scripted
from tests.passkeys import SoftPasskey
from tiergate.approvals import (
    ApproverRegistry,
    dev_admin,
    generate_key,
    public_key_text,
    write_private_key,
)
from tiergate.approvals.client import decide
from tiergate.core import ApprovalDecision, Approver, key_id
from tiergate.errors import ApprovalRefusedError, ApproverError

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)


def unendorsed(name: str, roles: list[str], key: Ed25519PrivateKey) -> Approver:
    """A well-formed registry entry no administrator signed: what a file writer adds."""
    public = public_key_text(key)
    return Approver(
        name=name,
        roles=roles,
        public_key=public,
        key_id=key_id(public),
        created_at="2026-12-02T00:00:00+00:00",
    )


def test_entries_count_only_with_a_trusted_endorsement(tmp_path: Path) -> None:
    admin = dev_admin(tmp_path)
    registry = ApproverRegistry(tmp_path)
    registry.add("alice", ["support_lead"], demo_key=True)
    assert set(registry.trusted([admin]).approvers) == {"alice"}
    # Someone with write access to the file adds an entry of their own.
    data = json.loads(registry.path.read_text())
    data["mallory"] = unendorsed("mallory", ["finance"], generate_key()).model_dump()
    # ... and widens alice's roles under her old endorsement.
    data["alice"]["roles"] = ["finance", "support_lead"]
    registry.path.write_text(json.dumps(data))
    assert set(registry.snapshot().approvers) == {"alice", "mallory"}
    assert registry.trusted([admin]).approvers == {}
    # An endorsement by a key the worker does not trust counts for nothing either.
    assert registry.trusted([public_key_text(generate_key())]).approvers == {}


def test_an_approver_entry_does_not_pass_as_an_operator(tmp_path: Path) -> None:
    admin = dev_admin(tmp_path)
    approvers = ApproverRegistry(tmp_path)
    approvers.add("alice", ["support_lead"])
    operators = ApproverRegistry(tmp_path, "operators")
    operators.path.write_text(approvers.path.read_text())
    assert operators.trusted([admin]).approvers == {}


def test_changes_take_the_administrator_key_and_are_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIERGATE_ADMIN_KEY", raising=False)
    with pytest.raises(ApproverError, match="takes the administrator key"):
        ApproverRegistry(tmp_path).add("alice", ["support_lead"])
    key = write_private_key(tmp_path / "elsewhere" / "admin.pem", generate_key())
    monkeypatch.setenv("TIERGATE_ADMIN_KEY", str(key))
    registry = ApproverRegistry(tmp_path)
    registry.add("alice", ["support_lead"], demo_key=True)
    registry.revoke("alice")
    changes = [json.loads(line) for line in registry.log.read_text().splitlines()]
    assert [(c["op"], c["entry"]["name"], c["registry"]) for c in changes] == [
        ("add", "alice", "approvers"),
        ("revoke", "alice", "approvers"),
    ]
    assert all(c["by"].startswith("ed25519:") and c["at"] for c in changes)


async def test_a_run_refuses_an_approver_the_administrator_never_endorsed(
    harness: Harness,
) -> None:
    """End to end: an approver written into approvers.json by hand cannot approve."""
    h = harness
    key = generate_key()
    # Even labeled a demo key, with the private key beside it on the host.
    entry = unendorsed("mallory", ["support_lead"], key).model_copy(update={"demo_key": True})
    h.registry.path.write_text(json.dumps({"mallory": entry.model_dump()}))
    write_private_key(h.home / "keys" / "mallory.pem", key)
    agent = h.add_agent("a")
    async with h.worker():
        handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
        await h.pending(handle)
        with pytest.raises(ApprovalRefusedError) as refused:
            await decide(
                h.env.client, h.registry, handle.id, "mallory", ApprovalDecision.APPROVE, "ok"
            )
        assert refused.value.code == "unknown_approver"
        await handle.terminate("test over")
    assert h.store.rows("refunds") == []


def test_a_registry_rolled_back_does_not_bring_back_what_was_revoked(tmp_path: Path) -> None:
    """A file writer cannot forge an endorsement, but could put back an older endorsed file.
    A host that has read the newer state keeps it (`RegistryMemory`, in its own home)."""
    admin = dev_admin(tmp_path)
    registry = ApproverRegistry(tmp_path)
    host = ApproverRegistry(tmp_path, seen=tmp_path / "worker" / "registry-seen")
    registry.add("alice", ["support_lead"], demo_key=True)
    passkey = SoftPasskey("https://approvals.example.com").passkey()
    registry.add_passkey("alice", passkey)
    registry.add("bob", ["finance"], demo_key=True)
    before = registry.path.read_text()
    assert host.trusted([admin]).approvers["alice"].passkeys == [passkey]
    registry.revoke("bob")
    registry.revoke_passkey("alice", passkey.key_id)
    assert host.trusted([admin]).approvers["bob"].active is False  # the host reads it once
    registry.path.write_text(before)  # ... and the file is put back
    # Without a memory the old state would count again: that is the attack.
    stale = registry.trusted([admin]).approvers
    assert stale["bob"].active
    assert stale["alice"].passkeys
    taken = host.trusted([admin]).approvers
    assert taken["bob"].active is False
    assert taken["alice"].passkeys == []
    # A forged memory grants nothing: what it holds must be endorsed too.
    memory = tmp_path / "worker" / "registry-seen" / "approvers.json"
    forged = json.loads(memory.read_text())
    forged["alice"]["roles"] = ["finance", "support_lead"]
    forged["alice"]["changed_at"] = "2999-01-01T00:00:00+00:00"
    memory.write_text(json.dumps(forged))
    assert host.trusted([admin]).approvers["alice"].roles == ["support_lead"]


def test_entries_endorsed_before_the_new_fields_still_verify(tmp_path: Path) -> None:
    """Passkeys, the demo label and `changed_at` are signed only when set, so an entry
    endorsed before they existed keeps its endorsement."""
    admin = dev_admin(tmp_path)
    registry = ApproverRegistry(tmp_path)
    entry, _ = registry.add("carol", ["finance"], public_key_text(generate_key()))
    legacy = entry.model_copy(update={"changed_at": ""})
    message = legacy.endorsement_message("approvers")
    assert b"changed_at" not in message
    assert b"passkeys" not in message
    assert b"demo_key" not in message
    assert entry.endorsed_by([admin], "approvers")
    assert b"changed_at" in entry.endorsement_message("approvers")
