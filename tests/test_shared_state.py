"""The shared store: one schema on SQLite and PostgreSQL alike, migrated once however many
processes open it at once, and stores whose concurrent writers lose nothing."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from multiprocessing.queues import Queue
from pathlib import Path

import pytest

from tests.passkeys import SoftPasskey
from tests.processes import in_processes, new_queue
from tests.test_store_roles import REVIEW_ITEM
from tiergate.activities import ReviewStore
from tiergate.approvals import (
    ApproverRegistry,
    Credentials,
    dev_admin,
    generate_key,
    public_key_text,
)
from tiergate.approvals._enrollments import MAX_WAITING, PasskeyEnrollments
from tiergate.control import Controls, Rollout, RolloutStore
from tiergate.errors import StateError
from tiergate.settings import Settings
from tiergate.state import MIGRATIONS, Tx, close_database, connect, open_database


def schema_versions(url: str) -> list[int]:
    rows = open_database(url).transaction(
        lambda tx: tx.all("SELECT version FROM tiergate_schema ORDER BY version")
    )
    return [row[0] for row in rows]


def _open_in_a_process(url: str) -> None:
    open_database(url)


def test_processes_opening_a_new_store_at_once_migrate_it_once(database_url: str) -> None:
    in_processes(_open_in_a_process, [(database_url,) for _ in range(4)])
    assert schema_versions(database_url) == [m.version for m in MIGRATIONS]
    close_database(database_url)
    assert schema_versions(database_url) == [m.version for m in MIGRATIONS]  # again: no-op


def test_a_writer_tripping_over_a_concurrent_insert_is_tried_again(database_url: str) -> None:
    """The key is checked in one table, a unique index in another trips on a concurrent
    insert: tried again, the writer sees the committed claim (PostgreSQL raises a unique
    violation there, not a serialization failure); a real violation still surfaces."""
    database = connect(database_url)
    database.transaction(lambda tx: tx.execute("CREATE TABLE claims (k TEXT PRIMARY KEY)"))
    database.transaction(lambda tx: tx.execute("CREATE TABLE made (k TEXT UNIQUE)"))
    first_inside = threading.Event()

    def claim(tx: Tx, slow: bool) -> str:
        if tx.one("SELECT k FROM claims WHERE k = 'k'") is not None:
            return "found"
        tx.execute("INSERT INTO made VALUES ('k')")
        if slow:
            first_inside.set()
            time.sleep(0.5)  # long enough for the second writer to reach the insert
        tx.execute("INSERT INTO claims VALUES ('k')")
        return "made"

    answers: list[str] = []
    first = threading.Thread(
        target=lambda: answers.append(database.transaction(lambda tx: claim(tx, slow=True)))
    )
    first.start()
    assert first_inside.wait(10)
    answers.append(database.transaction(lambda tx: claim(tx, slow=False)))
    first.join(10)
    assert sorted(answers) == ["found", "made"]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        database.transaction(lambda tx: tx.execute("INSERT INTO made VALUES ('k')"))


def test_a_store_newer_than_this_code_is_refused(database_url: str) -> None:
    open_database(database_url).transaction(
        lambda tx: tx.execute(
            "INSERT INTO tiergate_schema VALUES (?, ?, ?)", (999, "from the future", "now")
        )
    )
    close_database(database_url)
    with pytest.raises(StateError, match="schema version 999, newer than this tiergate knows"):
        open_database(database_url)


def test_the_kill_switch_keeps_every_change_with_who(database_url: str) -> None:
    controls = Controls(open_database(database_url))
    controls.pause("refunds", "ana", "incident 7")
    controls.pause("refunds", "bo", "still on")  # a second pause replaces the first
    controls.disable("payments.issue_refund", "ana")
    state = controls.read()
    assert state.paused_agents["refunds"].by == "bo"
    assert set(state.disabled_tools) == {"payments.issue_refund"}
    controls.resume("refunds", "ana")
    controls.enable("payments.issue_refund", "ana")
    assert controls.read().paused_agents == {}
    assert controls.read().disabled_tools == {}
    assert [(e.action, e.by, e.reason) for e in controls.events()] == [
        ("pause", "ana", "incident 7"),
        ("pause", "bo", "still on"),
        ("disable", "ana", ""),
        ("resume", "ana", ""),
        ("enable", "ana", ""),
    ]


def _log_rollout_events(url: str, writer: int) -> None:
    store = RolloutStore(open_database(url))
    for n in range(10):

        def edit(current: Rollout | None, n: int = n) -> Rollout:
            rollout = current or Rollout(agent="a", primary="1")
            rollout.share = round((writer * 10 + n) / 100, 2)
            rollout.log("share", f"writer {writer} change {n}")
            return rollout

        store.change("a", edit)


def test_operators_changing_one_rollout_at_once_lose_no_change(database_url: str) -> None:
    open_database(database_url)  # migrated first, so the writers only contend on the rollout
    in_processes(_log_rollout_events, [(database_url, w) for w in range(3)])
    rollout = RolloutStore(open_database(database_url)).get("a")
    assert rollout is not None
    details = sorted(e.detail for e in rollout.events)
    assert details == sorted(f"writer {w} change {n}" for w in range(3) for n in range(10))


def test_the_review_queue_takes_a_step_once(database_url: str) -> None:
    reviews = ReviewStore(open_database(database_url))
    item = REVIEW_ITEM
    first = reviews.add(item)
    assert reviews.add(item) == first  # the retried activity queues nothing new
    reviews.flag(first, "rita", "ok", "looks right")
    assert reviews.list() == []
    (done,) = reviews.list(include_reviewed=True)
    assert (done["reviewer"], done["verdict"], done["item"]["tool"]) == ("rita", "ok", "t.x")


def test_bad_urls_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="unknown scheme 'mysql'"):
        open_database("mysql://root:pw@localhost/x")
    with pytest.raises(StateError, match="names no file"):
        open_database("sqlite:///")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StateError) as refused:
        open_database(f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    assert "cannot reach postgresql://u:***@127.0.0.1" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def _redeem_in_a_process(url: str, token: str, out: Queue[str]) -> None:
    out.put(Credentials(open_database(url)).redeem_token(token) or "refused")


def test_a_sign_in_link_works_once_however_many_replicas_redeem_it(database_url: str) -> None:
    credentials = Credentials(open_database(database_url))
    token = credentials.issue_token("lead", minutes=5)
    out: Queue[str] = new_queue()
    in_processes(_redeem_in_a_process, [(database_url, token, out) for _ in range(4)])
    assert sorted(out.get(timeout=10) for _ in range(4)) == ["lead", *["refused"] * 3]
    expired = credentials.issue_token("lead", minutes=-1)
    assert credentials.redeem_token(expired) is None
    credentials.set_password("lead", "a-long-password")
    assert credentials.verify_password("lead", "a-long-password")
    assert not credentials.verify_password("lead", "another-password")
    stored = open_database(database_url).transaction(
        lambda tx: tx.all("SELECT token_hash FROM signin_tokens")
    )
    assert token not in {row[0] for row in stored}  # only hashes are kept


def _change_the_registry(url: str, admin_key: str, home: str, writer: int) -> None:
    registry = ApproverRegistry(open_database(url), home=Path(home), admin_key=Path(admin_key))
    for i in range(4):
        registry.add(f"w{writer}-{i}", ["support_lead"], public_key_text(generate_key()))
    # Every writer also edits one shared entry: a read-modify-write of the same row.
    registry.add_passkey("shared", SoftPasskey("https://approvals.example.com").passkey())


def test_administrators_changing_the_registry_at_once_lose_no_change(
    database_url: str, tmp_path: Path
) -> None:
    admin_key = tmp_path / "admin" / "admin.pem"
    admin = dev_admin(tmp_path)
    registry = ApproverRegistry(open_database(database_url), home=tmp_path)
    registry.add("shared", ["finance"])
    in_processes(
        _change_the_registry,
        [(database_url, str(admin_key), str(tmp_path / f"p{w}"), w) for w in range(3)],
    )
    trusted = registry.trusted([admin]).approvers
    assert set(trusted) == {"shared"} | {f"w{w}-{i}" for w in range(3) for i in range(4)}
    assert len(trusted["shared"].passkeys) == 3
    ops = [c["op"] for c in registry.changes()]
    assert ops.count("add") == 13
    assert ops.count("add_passkey") == 3


def test_a_passkey_enrolled_on_one_replica_waits_for_every_administrator(
    database_url: str,
) -> None:
    page, admin = (
        PasskeyEnrollments(open_database(database_url)),
        PasskeyEnrollments(open_database(database_url)),
    )
    keys = [SoftPasskey("https://approvals.example.com").passkey() for _ in range(MAX_WAITING + 1)]
    for passkey in keys:
        page.add("lead", passkey)
    waiting = admin.of("lead")
    assert waiting == keys[1:]  # the oldest went: at most MAX_WAITING wait
    assert admin.find("lead", keys[2].key_id) == keys[2]
    admin.remove("lead", keys[2].key_id)
    assert keys[2] not in page.of("lead")
    assert set(page.all()) == {"lead"}


def test_an_upgraded_home_keeps_its_pauses_counts_reviews_and_passwords(tmp_path: Path) -> None:
    """The files a home kept before the shared store move into it once, so an upgrade
    lifts no pause, resets no cap and locks no approver out."""
    home = tmp_path / "home"
    home.mkdir()
    switch = {"at": "2026-12-01T10:00:00+00:00", "by": "ana", "reason": "incident 7"}
    (home / "controls.json").write_text(
        json.dumps({"paused_agents": {"refunds": switch}, "disabled_tools": {"email.send": switch}})
    )
    rollout = Rollout(agent="refunds", primary="1", candidate="2", mode="canary", share=0.1)
    rollout.log("start", "canary of 2")
    (home / "rollouts.json").write_text(json.dumps({"refunds": rollout.model_dump(mode="json")}))
    old = Credentials(open_database(f"sqlite:///{tmp_path / 'scratch.sqlite'}"))
    old.set_password("lead", "lead-password-1")
    (stored,) = old.database.transaction(lambda tx: tx.all("SELECT hash FROM web_passwords"))
    (home / "credentials.json").write_text(
        json.dumps({"lead": {"password": stored[0], "tokens": {}}})
    )
    with sqlite3.connect(home / "caps.sqlite") as conn:
        conn.executescript(
            "CREATE TABLE cap_usage (counter TEXT PRIMARY KEY, calls INTEGER, total TEXT);"
            "CREATE TABLE cap_charges (idempotency_key TEXT, counter TEXT, amount TEXT);"
            "INSERT INTO cap_usage VALUES ('refunds|day|2026-12-03', 3, '120');"
            "INSERT INTO cap_charges VALUES ('k1', 'refunds|day|2026-12-03', '40');"
        )
    conn.close()

    database = Settings(home=home).database()

    state = Controls(database).read()
    assert state.paused_agents["refunds"].reason == "incident 7"
    assert set(state.disabled_tools) == {"email.send"}
    moved = RolloutStore(database).get("refunds")
    assert moved is not None
    assert (moved.candidate, [e.action for e in moved.events]) == ("2", ["start"])
    assert Credentials(database).verify_password("lead", "lead-password-1")
    usage = database.transaction(lambda tx: tx.all("SELECT counter, calls, total FROM cap_usage"))
    assert usage == [("refunds|day|2026-12-03", 3, "120")]
    assert sorted(p.name for p in home.iterdir() if p.suffix == ".imported") == [
        "caps.sqlite.imported",
        "controls.json.imported",
        "credentials.json.imported",
        "rollouts.json.imported",
    ]


def test_an_upgraded_home_keeps_its_registry_and_enrollments(tmp_path: Path) -> None:
    """The registries' files (in the home, or in the old ``registry_dir``) and waiting
    passkey enrollments move into the store once, endorsements intact."""
    home, folder = tmp_path / "home", tmp_path / "registry"
    folder.mkdir()
    admin = dev_admin(home)
    scratch = open_database(f"sqlite:///{tmp_path / 'scratch.sqlite'}")
    made = {
        "approvers": ApproverRegistry(scratch, "approvers", home=home).add(
            "alice", ["support_lead"], demo_key=True
        )[0],
        "operators": ApproverRegistry(scratch, "operators", home=home).add(
            "oncall", ["operator"], demo_key=True
        )[0],
    }
    (home / "approvers.json").write_text(json.dumps({"alice": made["approvers"].model_dump()}))
    (folder / "operators.json").write_text(json.dumps({"oncall": made["operators"].model_dump()}))
    assert made["approvers"].endorsement is not None
    change = {"registry": "approvers", "op": "add", "by": made["approvers"].endorsement.by}
    line = {**change, "at": made["approvers"].changed_at, "entry": made["approvers"].model_dump()}
    (home / "registry-changes.jsonl").write_text(json.dumps(line) + "\n")
    passkey = SoftPasskey("https://approvals.example.com").passkey()
    (home / "passkey-enrollments.json").write_text(json.dumps({"bob": [passkey.model_dump()]}))

    settings = Settings(home=home, registry_dir=folder)
    database = settings.database()

    assert ApproverRegistry.of(settings).trusted([admin]).approvers == {"alice": made["approvers"]}
    operators = ApproverRegistry.of(settings, "operators").trusted([admin]).approvers
    assert operators == {"oncall": made["operators"]}
    changes = ApproverRegistry.of(settings).changes()
    assert [(c["op"], c["name"], c["by"]) for c in changes] == [("add", "alice", change["by"])]
    assert PasskeyEnrollments(database).of("bob") == [passkey]
    assert (folder / "operators.json.imported").exists()
    assert not (home / "approvers.json").exists()
