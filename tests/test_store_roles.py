"""A fleet's workers and page replicas share one store but not one database role: a worker
cannot mint a sign-in link, open a page session, lift a pause or put an old registry row
back; the page cannot count caps or queue reviews; each does its own part."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.postgres import PostgresCluster
from tiergate.activities import ReviewStore
from tiergate.activities._content import DatabaseContentStore
from tiergate.approvals import ApproverRegistry, Credentials, dev_admin
from tiergate.approvals._enrollments import PasskeyEnrollments
from tiergate.control import CapLedger, Controls
from tiergate.core import Cap, ReviewItem
from tiergate.errors import StateError
from tiergate.state import ACCESS, MIGRATIONS, Database, Tx, grant, open_database
from tiergate.web import SharedLimiter
from tiergate.web._sessions import SessionStore

TIERGATE = str(Path(__file__).parent.parent / ".venv" / "bin" / "tiergate")
#: A queued review, as the worker's activity adds one.
REVIEW_ITEM = ReviewItem(
    run_id="r1",
    agent="a",
    step=2,
    tool="t.x",
    arguments={},
    call_digest="d",
    policy_ids=["p"],
    policy_version="v",
    reason="why",
    result_preview="ok",
)
CAP = Cap(name="daily", tools=["payments.issue_refund"], window="day", max_calls=3)


def role_name(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0]


def denied(action: Callable[[], object]) -> None:
    with pytest.raises(StateError, match="permission denied") as refused:
        action()
    assert "tiergate store grant" in (refused.value.fix or "")


def put_back_old_row(database: Database) -> None:
    database.transaction(
        lambda tx: tx.execute(
            "UPDATE registry_entries SET body = body WHERE registry = 'approvers'"
        )
    )


def test_every_table_is_in_reach_of_whom_it_should_be() -> None:
    """A new table nobody thought about reaches neither role: it must be added knowingly."""
    created = {
        statement.split("CREATE TABLE ", 1)[1].split()[0]
        for migration in MIGRATIONS
        for statement in migration.statements
        if statement.startswith("CREATE TABLE")
    }
    reachable = set(ACCESS["worker"]) | set(ACCESS["web"])
    assert reachable - {"tiergate_schema"} <= created
    # The owner's alone: change logs and eval results.
    assert created - reachable == {"registry_changes", "switch_events", "suite_runs"}


def test_a_worker_role_and_a_page_role_do_only_their_part(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    with postgres.fresh() as url:
        owner = open_database(url)
        admin = dev_admin(tmp_path)
        ApproverRegistry(owner, home=tmp_path).add("lead", ["support_lead"])
        Credentials(owner).set_password("lead", "lead-password-1")
        token = Credentials(owner).issue_token("lead")
        Controls(owner).pause("refunds", "ana", "incident 7")
        with postgres.role(url) as worker_url, postgres.role(url) as web_url:
            grant(owner, role_name(worker_url), "worker")
            grant(owner, role_name(web_url), "web")
            worker, web = open_database(worker_url), open_database(web_url)

            # The worker: reads the switch, rollouts and registry; writes what runs write.
            assert set(Controls(worker).read().paused_agents) == {"refunds"}
            registry = ApproverRegistry(worker, home=tmp_path)
            assert set(registry.trusted([admin]).approvers) == {"lead"}
            ledger = CapLedger(worker)
            ledger.charge("refunds", (CAP,), {}, "run/1/step-1")
            ledger.settle("run/1/step-1")
            ref = DatabaseContentStore(worker).put(b"transcript")
            assert DatabaseContentStore(worker).get(ref) == b"transcript"
            ReviewStore(worker).add(REVIEW_ITEM)
            denied(lambda: Credentials(worker).issue_token("lead"))
            denied(lambda: Credentials(worker).verify_password("lead", "lead-password-1"))
            denied(lambda: SessionStore(worker).open("lead"))
            denied(lambda: Controls(worker).resume("refunds", "mallory"))
            denied(lambda: put_back_old_row(worker))
            denied(lambda: registry.add("mallory", ["finance"]))

            # The page: signs people in and keeps sessions and enrollments; nothing else.
            assert Credentials(web).verify_password("lead", "lead-password-1")
            assert Credentials(web).redeem_token(token) == "lead"
            sessions = SessionStore(web)
            session = sessions.current(sessions.open("lead"))
            assert session is not None
            assert session.approver == "lead"
            assert PasskeyEnrollments(web).of("lead") == []
            SharedLimiter(web).failed("ip:6.6.6.6", "name:lead")  # replicas share backoff
            denied(lambda: SharedLimiter(worker).failed("ip:6.6.6.6"))
            denied(lambda: Credentials(web).issue_token("lead"))
            denied(lambda: Credentials(web).set_password("lead", "another-password"))
            denied(lambda: CapLedger(web).charge("refunds", (CAP,), {}, "run/2/step-1"))
            denied(lambda: ReviewStore(web).add(REVIEW_ITEM))
            denied(lambda: Controls(web).read())
            denied(lambda: put_back_old_row(web))


def test_the_store_command_migrates_and_grants(postgres: PostgresCluster, tmp_path: Path) -> None:
    with postgres.fresh() as url, postgres.role(url) as worker_url:
        env = {"TIERGATE_DATABASE_URL": url, "TIERGATE_HOME": str(tmp_path), "PATH": "/usr/bin"}
        done = subprocess.run(
            [TIERGATE, "store", "migrate", "--worker", role_name(worker_url)],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"granted worker access to {role_name(worker_url)}" in done.stdout
        worker = open_database(worker_url)

        def grants(tx: Tx) -> list[tuple[str, str]]:
            return [
                (str(table), str(privilege))
                for table, privilege in tx.all(
                    "SELECT table_name, privilege_type FROM information_schema.table_privileges "
                    "WHERE grantee = current_user"
                )
            ]

        held = worker.transaction(grants)
        expected = {(t, p) for t, ps in ACCESS["worker"].items() for p in ps}
        assert set(held) == expected, json.dumps(sorted(set(held) ^ expected))
        refused = subprocess.run(
            [TIERGATE, "store", "migrate", "--web", "Robert'); DROP TABLE content;--"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "is not a role name" in refused.stdout
