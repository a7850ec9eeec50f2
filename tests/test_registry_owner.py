"""Issue #20, item 6: the registry has an owner.

Adding, revoking and re-keying approvers and operators is signed by an administrator key;
workers and the page take only entries an administrator they trust endorsed, so write
access to the shared store's registry rows alone adds nobody, and every change is kept with
who and when. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import Harness, call, final, scripted
from tests.passkeys import SoftPasskey
from tiergate.approvals import (
    ApproverRegistry,
    dev_admin,
    generate_key,
    public_key_text,
    read_private_key,
    write_private_key,
)
from tiergate.approvals._registry import Kind
from tiergate.approvals.client import decide
from tiergate.core import ApprovalDecision, Approver, key_id
from tiergate.errors import ApprovalRefusedError, ApproverError
from tiergate.state import Tx, open_database

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


def on(
    database_url: str, home: Path, kind: Kind = "approvers", seen: Path | None = None
) -> ApproverRegistry:
    return ApproverRegistry(open_database(database_url), kind, home=home, seen=seen)


def rows(registry: ApproverRegistry) -> dict[str, dict[str, Any]]:
    """The registry's rows as they are stored: what a database writer sees."""
    found = registry.database.transaction(
        lambda tx: tx.all(
            "SELECT name, body FROM registry_entries WHERE registry = ?", (registry.kind,)
        )
    )
    return {name: json.loads(body) for name, body in found}


def write_rows(registry: ApproverRegistry, data: dict[str, dict[str, Any]]) -> None:
    """Replace the registry's rows behind its back, as someone with database access can."""

    def work(tx: Tx) -> None:
        tx.execute("DELETE FROM registry_entries WHERE registry = ?", (registry.kind,))
        for name, body in data.items():
            tx.execute(
                "INSERT INTO registry_entries VALUES (?, ?, ?)",
                (registry.kind, name, json.dumps(body)),
            )

    registry.database.transaction(work)


def test_entries_count_only_with_a_trusted_endorsement(tmp_path: Path, database_url: str) -> None:
    admin = dev_admin(tmp_path)
    registry = on(database_url, tmp_path)
    registry.add("alice", ["support_lead"], demo_key=True)
    assert set(registry.trusted([admin]).approvers) == {"alice"}
    # Someone with write access to the store adds an entry of their own.
    data = rows(registry)
    data["mallory"] = unendorsed("mallory", ["finance"], generate_key()).model_dump()
    # ... and widens alice's roles under her old endorsement.
    data["alice"]["roles"] = ["finance", "support_lead"]
    write_rows(registry, data)
    assert set(registry.snapshot().approvers) == {"alice", "mallory"}
    assert registry.trusted([admin]).approvers == {}
    # An endorsement by a key the worker does not trust counts for nothing either.
    assert registry.trusted([public_key_text(generate_key())]).approvers == {}


def test_an_approver_entry_does_not_pass_as_an_operator(tmp_path: Path, database_url: str) -> None:
    admin = dev_admin(tmp_path)
    approvers = on(database_url, tmp_path)
    approvers.add("alice", ["support_lead"])
    operators = on(database_url, tmp_path, "operators")
    write_rows(operators, rows(approvers))
    assert set(operators.snapshot().approvers) == {"alice"}
    assert operators.trusted([admin]).approvers == {}


def test_changes_take_the_administrator_key_and_are_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.delenv("TIERGATE_ADMIN_KEY", raising=False)
    with pytest.raises(ApproverError, match="takes the administrator key"):
        on(database_url, tmp_path).add("alice", ["support_lead"])
    assert on(database_url, tmp_path).changes() == []
    key = write_private_key(tmp_path / "elsewhere" / "admin.pem", generate_key())
    monkeypatch.setenv("TIERGATE_ADMIN_KEY", str(key))
    registry = on(database_url, tmp_path)
    registry.add("alice", ["support_lead"], demo_key=True)
    registry.revoke("alice")
    # A refused change changes nothing and logs nothing.
    with pytest.raises(ApproverError, match="already registered"):
        registry.add("Alice", ["finance"])
    changes = registry.changes()
    assert [(c["op"], c["name"], c["entry"]["name"], c["registry"]) for c in changes] == [
        ("add", "alice", "alice", "approvers"),
        ("revoke", "alice", "alice", "approvers"),
    ]
    assert all(c["by"] == key_id(public_key_text(read_private_key(key))) for c in changes)
    assert changes[-1]["entry"] == rows(registry)["alice"]


async def test_a_run_refuses_an_approver_the_administrator_never_endorsed(
    harness: Harness,
) -> None:
    """End to end: an approver written into the store by hand cannot approve."""
    h = harness
    key = generate_key()
    # Even labeled a demo key, with the private key beside it on the host.
    entry = unendorsed("mallory", ["support_lead"], key).model_copy(update={"demo_key": True})
    write_rows(h.registry, {"mallory": entry.model_dump()})
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


def test_a_registry_rolled_back_does_not_bring_back_what_was_revoked(
    tmp_path: Path, database_url: str
) -> None:
    """A database writer cannot forge an endorsement, but could put back older endorsed
    rows. A host that has read the newer state keeps it (`RegistryMemory`, in its home)."""
    admin = dev_admin(tmp_path)
    registry = on(database_url, tmp_path)
    host = on(database_url, tmp_path, seen=tmp_path / "worker" / "registry-seen")
    registry.add("alice", ["support_lead"], demo_key=True)
    passkey = SoftPasskey("https://approvals.example.com").passkey()
    registry.add_passkey("alice", passkey)
    registry.add("bob", ["finance"], demo_key=True)
    before = rows(registry)
    assert host.trusted([admin]).approvers["alice"].passkeys == [passkey]
    registry.revoke("bob")
    registry.revoke_passkey("alice", passkey.key_id)
    assert host.trusted([admin]).approvers["bob"].active is False  # the host reads it once
    write_rows(registry, before)  # ... and the rows are put back
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
    registry = on(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    entry, _ = registry.add("carol", ["finance"], public_key_text(generate_key()))
    legacy = entry.model_copy(update={"changed_at": ""})
    message = legacy.endorsement_message("approvers")
    assert b"changed_at" not in message
    assert b"passkeys" not in message
    assert b"demo_key" not in message
    assert entry.endorsed_by([admin], "approvers")
    assert b"changed_at" in entry.endorsement_message("approvers")
