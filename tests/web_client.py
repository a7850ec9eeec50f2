"""The approvals page as an approver's browser script drives it, over real HTTP: sign in,
review a pending action, have a (software) passkey sign the answer, send it."""

from __future__ import annotations

import re

import httpx

from tests.passkeys import SoftPasskey
from tiergate.core import from_b64url


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str) -> httpx.AsyncClient:
    page = await client.get("/signin")
    response = await client.post(
        "/signin", data={"csrf": form_csrf(page.text), "name": name, "password": password}
    )
    assert response.status_code == 303, response.text
    return client


async def review(client: httpx.AsyncClient, run_id: str) -> dict[str, str]:
    """The approval page's form fields (its token and the digest reviewed)."""
    page = await client.get(f"/approvals/{run_id}")
    assert page.status_code == 200, page.text
    return dict(re.findall(r'name="(csrf|digest)" value="([^"]+)"', page.text))


async def decide(
    client: httpx.AsyncClient,
    run_id: str,
    soft: SoftPasskey,
    decision: str = "approve",
    justification: str = "ok",
) -> httpx.Response:
    """What the page's script does: ask for the answer's challenge, have the passkey sign
    it, post the assertion."""
    form = await review(client, run_id)
    options = await client.post(
        f"/approvals/{run_id}/challenge",
        data={**form, "decision": decision, "justification": justification},
    )
    assert options.status_code == 200, options.text
    assertion = soft.assert_challenge(from_b64url(options.json()["publicKey"]["challenge"]))
    return await client.post(
        f"/approvals/{run_id}",
        data={**form, "decision": decision, "assertion": assertion.model_dump_json()},
    )
