"""Agent identity: one short-lived credential per tool call, refused for anything else."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from tests.conftest import Harness, call, final, scripted
from tiergate.activities import BackendGuard, CredentialBroker
from tiergate.config import load_agent
from tiergate.core import VerifiedCall
from tiergate.demo import SUPPORT_TOOLS
from tiergate.errors import CredentialRefusedError

RUN, STEP, TOOL, SCOPE = "run-1", 3, "payments.issue_refund", "write:payments.issue_refund"
_BUNDLE = load_agent("support_refund_agent", None, SUPPORT_TOOLS.specs)


def verified(agent: str, run: str, step: int, tool: str) -> VerifiedCall:
    """A call as the runner's verification hands it to the broker (the only way to mint)."""
    return VerifiedCall(
        tool=tool,
        agent=agent,
        run_id=run,
        step=step,
        tier=2,
        arguments={},
        bundle=_BUNDLE,
        spec=SUPPORT_TOOLS.specs[tool],
        checks=(),
    )


def test_a_fitting_credential_is_admitted_with_the_agents_principal() -> None:
    broker = CredentialBroker.ephemeral()
    token = broker.mint(verified("support_refund_agent", RUN, STEP, TOOL), [SCOPE])
    admitted = BackendGuard(broker.verifier()).admit(token, TOOL, RUN, STEP, SCOPE)
    assert admitted["principal"] == "agent:support_refund_agent"
    assert admitted["expires"] - time.time() <= 300


@pytest.mark.parametrize(
    ("tool", "run", "step", "scope", "why"),
    [
        ("email.send", RUN, STEP, SCOPE, "it is for tool payments.issue_refund, not email.send"),
        (TOOL, "run-2", STEP, SCOPE, "it is for run run-1, not run-2"),
        (TOOL, RUN, 4, SCOPE, "it is for step 3, not 4"),
        (TOOL, RUN, STEP, "write:users.delete_data", "it lacks scope 'write:users.delete_data'"),
    ],
)
def test_a_credential_replayed_elsewhere_is_refused(
    tool: str, run: str, step: int, scope: str, why: str
) -> None:
    broker = CredentialBroker.ephemeral()
    token = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE])
    with pytest.raises(CredentialRefusedError, match=f"credential refused: {why}"):
        BackendGuard(broker.verifier()).admit(token, tool, run, step, scope)


def test_an_expired_forged_or_tampered_credential_is_refused() -> None:
    broker = CredentialBroker.ephemeral()
    verifier = broker.verifier()
    old = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE], now=time.time() - 301)
    with pytest.raises(CredentialRefusedError, match="it has expired"):
        verifier.verify(old, tool=TOOL, run_id=RUN, step=STEP, scope=SCOPE)
    forged = CredentialBroker.ephemeral().mint(verified("a", RUN, STEP, TOOL), [SCOPE])
    with pytest.raises(CredentialRefusedError, match="not a valid tiergate credential"):
        verifier.verify(forged, tool=TOOL, run_id=RUN, step=STEP, scope=SCOPE)
    # The claims of one credential under the signature of another: the signature fails.
    reader = broker.mint(verified("a", RUN, STEP, "crm.read_ticket"), ["read:crm.read_ticket"])
    header, claims, _ = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE]).split(".")
    swapped = f"{header}.{claims}.{reader.split('.')[2]}"
    with pytest.raises(CredentialRefusedError, match="not a valid tiergate credential"):
        verifier.verify(swapped, tool=TOOL, run_id=RUN, step=STEP, scope=SCOPE)


def test_a_credential_is_a_standard_eddsa_jwt_with_every_registered_claim() -> None:
    """Any JOSE library can read it; the guard needs iss, aud, nbf, exp and jti."""
    import jwt

    broker = CredentialBroker.ephemeral()
    token = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE])
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, broker.key.public_key(), algorithms=["EdDSA"], audience=TOOL)
    assert {"iss", "sub", "aud", "iat", "nbf", "exp", "jti"} <= set(claims)
    assert claims["nbf"] <= time.time() < claims["exp"]


def test_a_credential_not_yet_valid_or_from_another_issuer_is_refused() -> None:
    import jwt

    broker = CredentialBroker.ephemeral()
    early = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE], now=time.time() + 120)
    with pytest.raises(CredentialRefusedError, match="not valid yet"):
        broker.verifier().verify(early, tool=TOOL, run_id=RUN, step=STEP, scope=SCOPE)
    now = int(time.time())
    stranger = jwt.encode(
        {"iss": "someone-else", "sub": "agent:a", "aud": TOOL, "run": RUN, "step": STEP,
         "scopes": [SCOPE], "iat": now, "nbf": now, "exp": now + 60, "jti": "x"},
        broker.key,
        algorithm="EdDSA",
    )  # fmt: skip
    with pytest.raises(CredentialRefusedError, match="issued by 'someone-else'"):
        broker.verifier().verify(stranger, tool=TOOL, run_id=RUN, step=STEP, scope=SCOPE)


def test_a_credential_is_admitted_once() -> None:
    """A token copied off the wire does not act twice, even for the same call."""
    broker = CredentialBroker.ephemeral()
    guard = BackendGuard(broker.verifier())
    token = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE])
    guard.admit(token, TOOL, RUN, STEP, SCOPE)
    with pytest.raises(CredentialRefusedError, match="used already"):
        guard.admit(token, TOOL, RUN, STEP, SCOPE)


def test_the_brokers_key_stays_in_the_worker_home(tmp_path: Path) -> None:
    broker = CredentialBroker.from_home(tmp_path)
    key = tmp_path / "keys" / "broker.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = CredentialBroker.from_home(tmp_path)
    token = broker.mint(verified("a", RUN, STEP, TOOL), [SCOPE])
    again.verifier().verify(token, tool=TOOL, run_id=RUN, step=STEP, scope=SCOPE)


async def test_every_tool_call_of_a_run_carries_its_own_credential(harness: Harness) -> None:
    agent = harness.add_agent("identified")
    read = call("crm.read_ticket", ticket_id="T-1001")
    status = call("orders.get_status", order_id="ORD-5001")
    summary = await harness.run(agent, model_overrides=scripted(read, status, final()))
    results = [s.tool_result for s in summary.steps if s.tool_result]
    assert [r.principal for r in results] == ["agent:identified", "agent:identified"]
    credentials = [r.credential for r in results]
    assert all(credentials)
    assert len(set(credentials)) == 2
