"""The approvals web page: routes over real HTTP, and the flows in a real Chromium.

Answers on the page are signed by passkeys: over HTTP by a software passkey
(`tests.passkeys`), in Chromium by its virtual authenticator (WebAuthn over DevTools).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, CDPSession, Page, async_playwright

from tests import web_client
from tests.conftest import Harness, agent_config, call, final, scripted
from tests.passkeys import SoftPasskey
from tests.test_cli import TIERGATE
from tests.web_client import decide, form_csrf, review
from tiergate.approvals._credentials import Credentials
from tiergate.approvals.client import build_request, pending_of, submit
from tiergate.cluster import free_port
from tiergate.core import ApprovalDecision, Outcome, RunSummary, from_b64url
from tiergate.errors import ApprovalRefusedError
from tiergate.web import WebContext, WebServer, build_app

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_PRESENT = Path(CHROMIUM).exists()
PASSWORDS = {
    "lead": "lead-password-1",
    "p1": "privacy-one-pw",
    "p2": "privacy-two-pw",
    "fin": "finance-pw-123",
}
REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
DELETE = call("users.delete_data", user_id="U-77", justification="customer asked")


@dataclass
class Site:
    harness: Harness
    context: WebContext
    url: str
    agent: str
    #: The approvers' software passkeys, endorsed (the HTTP tests sign with them).
    passkeys: dict[str, SoftPasskey]

    @property
    def browser_url(self) -> str:
        """The page as a browser reaches it: WebAuthn needs a host name, not an address."""
        return self.url.replace("127.0.0.1", "localhost")

    async def start(self, *outputs: Any) -> str:
        handle = await self.harness.start(
            self.agent, input={}, requester="svc", model_overrides=scripted(*outputs, final())
        )
        await self.harness.pending(handle)
        return handle.id


@pytest_asyncio.fixture
async def site(harness: Harness) -> AsyncIterator[Site]:
    roles = {
        "lead": ["support_lead"],
        "p1": ["privacy_officer"],
        "p2": ["privacy_officer"],
        "fin": ["intern"],
    }
    credentials = Credentials(harness.settings.database())
    for name, role in roles.items():
        # Web-only approvers: no key of theirs on this host, a passkey enrolled later.
        harness.registry.add(name, role)
        credentials.set_password(name, PASSWORDS[name])
    rules = agent_config("webbed")["agent"]["policy"]["rules"]
    # Receipts wait for a lead, so the page shows an email's destination to an approver.
    receipts = {
        "id": "receipts_need_a_lead",
        "tool": "email.send",
        "condition": 'input.subject != "Receipt"',
        "on_fail": "escalate_to_human",
    }
    agent = harness.add_agent(
        "webbed",
        policy={"engine": "cedar", "files": ["support.cedar"], "rules": [*rules, receipts]},
    )
    context = WebContext(harness.env.client, harness.settings, ui_url="http://ui.example")
    async with harness.worker(), WebServer(build_app(context), port=free_port()) as server:
        softs = {name: SoftPasskey(server.url) for name in ("lead", "fin")}
        for name, soft in softs.items():
            harness.registry.add_passkey(name, soft.passkey())
        yield Site(harness, context, server.url, agent, softs)


@contextlib.asynccontextmanager
async def signed_in(site: Site, name: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.url, follow_redirects=False) as client:
        yield await _sign_in(client, name)


async def _sign_in(client: httpx.AsyncClient, name: str) -> httpx.AsyncClient:
    return await web_client.sign_in(client, name, PASSWORDS[name])


# -- routes over real HTTP -------------------------------------------------------------------


async def test_sign_in_wrong_password_csrf_and_rate_limit(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        assert (await client.get("/")).status_code == 401
        page = await client.get("/signin")
        csrf = form_csrf(page.text)
        assert "HttpOnly" in page.headers["set-cookie"]
        assert "SameSite=strict" in page.headers["set-cookie"]
        response = await client.post("/signin", data={"name": "lead", "password": "wrong"})
        assert response.status_code == 403
        assert "sign-in form expired" in response.text
        csrf = form_csrf(response.text)  # each sign-in page issues a fresh form token
        for _ in range(5):
            response = await client.post(
                "/signin", data={"csrf": csrf, "name": "lead", "password": "wrong-password"}
            )
            assert response.status_code == 401
            assert "Wrong approver name or password." in response.text
            csrf = form_csrf(response.text)
        response = await client.post(
            "/signin", data={"csrf": csrf, "name": "lead", "password": PASSWORDS["lead"]}
        )
        assert response.status_code == 429
        assert "Too many failed sign-ins" in response.text


async def test_expired_session_and_signout(site: Site) -> None:
    async with signed_in(site, "lead") as client:
        assert (await client.get("/")).status_code == 200
        session = site.context.sessions.current(client.cookies["tg_session"])
        assert session is not None
        assert session.approver == "lead"
        site.context.sessions.expire(session)
        response = await client.get("/")
        assert response.status_code == 401
        assert "Your session has expired" in response.text


async def test_a_session_signed_in_on_one_replica_serves_on_another(site: Site) -> None:
    """Sessions live in the shared store: a second page process with nothing but the same
    settings serves the signed-in approver, and signing out there ends it here too."""
    replica = WebContext(site.harness.env.client, site.harness.settings)
    async with (
        WebServer(build_app(replica), port=free_port()) as other,
        signed_in(site, "lead") as client,
    ):
        cookie = {"tg_session": client.cookies["tg_session"]}
        async with httpx.AsyncClient(base_url=other.url, cookies=cookie) as there:
            page = await there.get("/")
            assert page.status_code == 200
            assert "lead" in page.text
            # The form token is the session's, whichever replica rendered the form.
            assert form_csrf(page.text) == form_csrf((await client.get("/")).text)
            out = await there.post("/signout", data={"csrf": form_csrf(page.text)})
            assert out.status_code == 303
        response = await client.get("/")
        assert response.status_code == 401
    stored = site.harness.settings.database().transaction(
        lambda tx: tx.all("SELECT sid_hash FROM web_sessions")
    )
    assert cookie["tg_session"] not in {row[0] for row in stored}  # only hashes are kept


async def test_decide_refuses_missing_csrf_unauthorized_and_decided(site: Site) -> None:
    run_id = await site.start(REFUND_400)
    async with signed_in(site, "lead") as lead, signed_in(site, "fin") as fin:
        page = await lead.get(f"/approvals/{run_id}")
        assert "payments.issue_refund" in page.text
        form = await review(lead, run_id)
        data = {"decision": "approve", "digest": form["digest"], "justification": "ok"}
        for path in (f"/approvals/{run_id}/challenge", f"/approvals/{run_id}"):
            refused = await lead.post(path, data=data)
            assert refused.status_code == 403
            assert "security token is missing or wrong" in refused.text
        # An approver whose role the approver policy does not cover sees nothing of the run.
        assert run_id not in (await fin.get("/")).text
        assert (await fin.get(f"/approvals/{run_id}")).status_code == 404
        fin_csrf = form_csrf((await fin.get("/")).text)
        forbidden = await fin.post(
            f"/approvals/{run_id}/challenge", data={**data, "csrf": fin_csrf}
        )
        assert forbidden.status_code == 403
        assert (await pending_of(site.harness.env.client, run_id)).approved_by == []
        done = await decide(lead, run_id, site.passkeys["lead"])
        assert done.status_code == 200, done.text
        assert "Approved: the run resumes" in done.text
        again = await lead.post(f"/approvals/{run_id}/challenge", data={**data, **form})
        assert again.status_code == 409
        assert "no longer waiting" in again.json()["error"]


async def test_the_page_sends_only_what_the_passkey_signed(site: Site) -> None:
    """No assertion, or one over another answer, or another approver's passkey: nothing is
    sent, and the run still waits."""
    run_id = await site.start(REFUND_400)
    async with signed_in(site, "lead") as lead:
        form = await review(lead, run_id)
        bare = await lead.post(f"/approvals/{run_id}", data={**form, "decision": "approve"})
        assert bare.status_code == 400
        assert "with your passkey" in bare.text
        reasonless = await lead.post(
            f"/approvals/{run_id}/challenge", data={**form, "decision": "deny"}
        )
        assert reasonless.status_code == 400
        assert reasonless.json()["error"] == "A deny needs a reason."
        options = await lead.post(
            f"/approvals/{run_id}/challenge",
            data={**form, "decision": "deny", "justification": "wrong order"},
        )
        challenge = from_b64url(options.json()["publicKey"]["challenge"])
        allowed = [c["id"] for c in options.json()["publicKey"]["allowCredentials"]]
        assert allowed == [site.passkeys["lead"].passkey().credential_id]
        for soft, signed in (
            (site.passkeys["lead"], b"\x00" * 32),  # an assertion over another challenge
            (site.passkeys["fin"], challenge),  # fin's passkey over lead's answer
        ):
            assertion = soft.assert_challenge(signed)
            refused = await lead.post(
                f"/approvals/{run_id}",
                data={**form, "decision": "deny", "assertion": assertion.model_dump_json()},
            )
            assert refused.status_code in (400, 409), refused.text
            assert "did not verify" in refused.text or "with your passkey" in refused.text
            # A refusal spends the prepared answer: the next try starts from a new challenge.
            await lead.post(
                f"/approvals/{run_id}/challenge",
                data={**form, "decision": "deny", "justification": "wrong order"},
            )
        pending = await pending_of(site.harness.env.client, run_id)
        assert pending.approved_by == []
        # Whatever the final form says, the answer sent is the one the passkey was asked for.
        options = await lead.post(
            f"/approvals/{run_id}/challenge",
            data={**form, "decision": "deny", "justification": "no carrier claim"},
        )
        challenge = from_b64url(options.json()["publicKey"]["challenge"])
        assertion = site.passkeys["lead"].assert_challenge(challenge)
        done = await lead.post(
            f"/approvals/{run_id}",
            data={**form, "decision": "approve", "assertion": assertion.model_dump_json()},
        )
        assert "Denied: the run resumes (denied)" in done.text
    assert site.harness.store.rows("refunds") == []


async def test_an_approver_without_an_endorsed_passkey_cannot_decide(site: Site) -> None:
    """p1 has signed in but enrolled nothing: the page offers enrollment, not the buttons;
    an enrollment counts only once an administrator endorsed it (the CLI, here)."""
    run_id = await site.start(DELETE)
    async with signed_in(site, "p1") as p1:
        assert 'id="enroll-passkey"' in (await p1.get("/")).text
        page = await p1.get(f"/approvals/{run_id}")
        assert 'id="no-passkey"' in page.text
        assert 'id="decide"' not in page.text
        form = dict(re.findall(r'name="(csrf)" value="([^"]+)"', page.text))
        refused = await p1.post(
            f"/approvals/{run_id}/challenge",
            data={
                **form,
                "digest": (await pending_of(site.harness.env.client, run_id)).call_digest,
                "decision": "approve",
                "justification": "identity verified",
            },
        )
        assert refused.status_code == 409
        assert "Enroll a passkey first" in refused.json()["error"]
        soft = SoftPasskey(site.url)
        options = await p1.post("/passkey/options", data=form)
        assert options.status_code == 200
        public_key = options.json()["publicKey"]
        assert public_key["authenticatorSelection"]["userVerification"] == "required"
        made = await p1.post(
            "/passkey",
            data={
                **form,
                "credential": json.dumps(soft.registration(from_b64url(public_key["challenge"]))),
            },
        )
        assert made.status_code == 200, made.text
        enrolled = made.json()
        assert enrolled["key_id"] == soft.passkey().key_id
        # Enrolled, not endorsed: still no buttons; the code waits on the passkey page.
        assert 'id="no-passkey"' in (await p1.get(f"/approvals/{run_id}")).text
        assert enrolled["code"] in (await p1.get("/passkey")).text
        # A replayed registration (the challenge is spent) is refused.
        replayed = await p1.post(
            "/passkey", data={**form, "credential": json.dumps(soft.registration(b"x" * 32))}
        )
        assert replayed.status_code == 409
        env = {"TIERGATE_HOME": str(site.harness.home)}
        code, out = await tiergate_input(
            ["approvers", "passkeys", "endorse", "p2", enrolled["code"]], "", env
        )
        assert code == 2
        assert "not 'p2'" in out
        code, out = await tiergate_input(
            ["approvers", "passkeys", "endorse", "p1", enrolled["code"]], "", env
        )
        assert code == 0, out
        assert enrolled["key_id"] in out
        assert site.context.enrollments.of("p1") == []
        assert 'id="enroll-passkey"' not in (await p1.get("/")).text
        assert 'id="decide"' in (await p1.get(f"/approvals/{run_id}")).text
        # The run pinned the registry when its wait began, before the endorsement: the
        # page says so before asking the passkey, and the run itself refuses the answer.
        form = await review(p1, run_id)
        late = await p1.post(
            f"/approvals/{run_id}/challenge",
            data={**form, "decision": "approve", "justification": "identity verified"},
        )
        assert late.status_code == 409
        assert "endorsed after this run began waiting" in late.json()["error"]
        pending = await pending_of(site.harness.env.client, run_id)
        direct = soft.sign(
            build_request(pending, "p1", ApprovalDecision.APPROVE, "identity verified", via="web")
        )
        with pytest.raises(ApprovalRefusedError) as late_answer:
            await submit(site.harness.env.client, direct)
        assert late_answer.value.code == "unknown_key"
        assert (await pending_of(site.harness.env.client, run_id)).approved_by == []
        later = await site.start(DELETE)
        recorded = await decide(p1, later, soft, justification="identity verified")
        assert "Recorded: 1 of 2 approvals so far." in recorded.text
    # No approver's private key was ever written on this host (the harness's operator
    # keeps its demo key under keys/operators/).
    assert list((site.harness.home / "keys").glob("*.pem")) == []


async def test_an_approver_sees_where_an_email_goes_but_not_to_whom(site: Site) -> None:
    receipt = call(
        "email.send", to="pat@customers.example.com", subject="Receipt", body="Your receipt."
    )
    run_id = await site.start(receipt)
    async with signed_in(site, "lead") as client:
        rows = (await client.get("/queue/rows")).text
        page = (await client.get(f"/approvals/{run_id}")).text
    for html in (rows, page):
        assert "p…@customers.example.com" in html
        assert "pat@customers.example.com" not in html
    assert "Your receipt." in page  # what the detector does not find is shown as proposed
    # Nothing left waiting for the tests after this one (the queue is the namespace's).
    await site.harness.env.client.get_workflow_handle(run_id).terminate("test done")


async def test_one_time_links_history_and_the_rows_fragment(site: Site) -> None:
    token = Credentials(site.harness.settings.database()).issue_token("lead", minutes=5)
    async with httpx.AsyncClient(base_url=site.url) as client:
        assert (await client.get("/queue/rows")).status_code == 401
        assert (await client.get(f"/signin/token/{token}")).status_code == 303
        run_id = await site.start(REFUND_400)
        rows = await client.get("/queue/rows")
        assert f'data-run="{run_id}"' in rows.text
        # The row shows the call itself, whatever the tool (no column named for one domain).
        assert "amount_usd=400.00, order_id=ORD-5002, reason_code=not_delivered" in rows.text
        denied = await decide(client, run_id, site.passkeys["lead"], "deny", "no carrier claim yet")
        assert "Denied: the run resumes (denied)" in denied.text
        await site.harness.env.client.get_workflow_handle(run_id).result()
        history = (await client.get("/history")).text
        assert run_id in history
        assert "deny by lead via web" in history
    async with httpx.AsyncClient(base_url=site.url) as other:
        reused = await other.get(f"/signin/token/{token}")
        assert reused.status_code == 401
        assert "invalid, used or expired" in reused.text


# -- the flows in Chromium -------------------------------------------------------------------


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM_PRESENT, "Chromium is missing: `make test` installs Debian's chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        await launched.close()


async def sign_in(page: Page, site: Site, name: str) -> None:
    await page.goto(f"{site.browser_url}/signin")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORDS[name])
    await page.click("button[type=submit]")
    await page.wait_for_selector("#queue")


async def with_authenticator(browser: Browser) -> tuple[Page, CDPSession, str]:
    """A page with Chromium's virtual platform authenticator (user verification on, the
    touch simulated): the passkey's private key lives in Chromium, never in the test."""
    page = await (await browser.new_context()).new_page()
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return page, cdp, added["authenticatorId"]


async def enroll_in_browser(page: Page, site: Site, name: str) -> str:
    """Enroll a passkey on the page and endorse it as the administrator would; its key id."""
    await page.goto(f"{site.browser_url}/passkey")
    assert await page.locator("#none-endorsed").count() == 1
    await page.click("#enroll")
    await page.wait_for_selector("#enrolled:not([hidden])", timeout=15_000)
    key_id = await page.locator("#enrolled-key").inner_text()
    waiting = site.context.enrollments.find(name, key_id)
    assert waiting is not None
    assert waiting.origin == site.browser_url
    site.harness.registry.add_passkey(name, waiting)
    await page.reload()
    assert key_id in await page.locator("#endorsed").inner_text()
    return key_id


async def test_chromium_shows_an_approver_where_an_email_goes_not_to_whom(
    site: Site, browser: Browser
) -> None:
    receipt = call(
        "email.send", to="pat@customers.example.com", subject="Receipt", body="Your receipt."
    )
    run_id = await site.start(receipt)
    page = await (await browser.new_context()).new_page()
    await sign_in(page, site, "lead")
    row = page.locator(f'#rows tr[data-run="{run_id}"] td.call')
    await row.wait_for()
    assert "to=p…@customers.example.com" in await row.inner_text()
    await page.goto(f"{site.browser_url}/approvals/{run_id}")
    shown = await page.locator("#arguments").inner_text()
    assert '"to": "p…@customers.example.com"' in shown
    assert "pat@" not in await page.content()
    await site.harness.env.client.get_workflow_handle(run_id).terminate("test done")


async def test_approve_a_large_refund_with_a_passkey(site: Site, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page, cdp, authenticator = await with_authenticator(browser)
    await sign_in(page, site, "lead")
    # lead's software passkey was made for another origin (the HTTP tests' address).
    key_id = await enroll_in_browser(page, site, "lead")
    await page.goto(site.browser_url)
    assert await page.locator("#rows tr td").first.inner_text() == "Nothing is waiting for you."
    run_id = await site.start(REFUND_400)
    # The queue updates by itself.
    row = page.locator(f'tr[data-run="{run_id}"]')
    await row.wait_for(timeout=15_000)
    assert "payments.issue_refund" in await row.inner_text()
    await page.screenshot(path=str(ARTIFACTS / "approvals-queue.png"), full_page=True)
    await row.get_by_role("link", name="Review").click()
    await page.wait_for_selector("#decide")
    assert "refund_cap" in await page.content()
    await page.screenshot(path=str(ARTIFACTS / "approval-page.png"), full_page=True)
    await page.fill("textarea[name=justification]", "carrier confirmed the loss")
    await page.click("button.approve")
    await page.wait_for_selector("text=Approved: the run resumes")
    summary = await site.harness.env.client.get_workflow_handle(
        run_id, result_type=RunSummary
    ).result()
    assert summary.outcome == Outcome.COMPLETED
    refunds = [r for r in site.harness.store.rows("refunds") if r["order_id"] == "ORD-5002"]
    assert len(refunds) == 1
    wait = summary.steps[0].approval
    assert wait is not None
    assert [(a.approver, a.via, a.verified, a.key_id) for a in wait.approvals] == [
        ("lead", "web", True, key_id)
    ]
    credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1  # the one passkey, in Chromium only
    # The history alone proves the approval: `approvals audit --history` re-verifies the
    # assertion offline, from the registry snapshot the run pinned, and catches a tampered one.
    exported = site.harness.home / "refund-history.json"
    exported.write_text((await site.harness.history(run_id)).to_json())
    code, out = await tiergate_input(
        ["approvals", "audit", run_id, "--history", str(exported)], "", {}
    )
    assert code == 0, out
    assert f"passkey assertion verified with {key_id}" in out.replace("\n", " ")
    data = json.loads(exported.read_text())
    for event in data["events"]:
        attributes = event.get("workflowExecutionUpdateAcceptedEventAttributes")
        if attributes:
            payload = attributes["acceptedRequest"]["input"]["args"]["payloads"][0]
            answer = json.loads(base64.b64decode(payload["data"]))
            answer["justification"] = "edited after the fact"
            payload["data"] = base64.b64encode(json.dumps(answer).encode()).decode()
    tampered = site.harness.home / "tampered-history.json"
    tampered.write_text(json.dumps(data))
    code, out = await tiergate_input(
        ["approvals", "audit", run_id, "--history", str(tampered)], "", {}
    )
    assert code != 0, out
    assert "passkey assertion does not verify" in out.replace("\n", " ")


async def test_dual_control_with_two_browsers(site: Site, browser: Browser) -> None:
    (first, _, _), (second, _, _) = [await with_authenticator(browser) for _ in range(2)]
    await sign_in(first, site, "p1")
    await sign_in(second, site, "p2")
    await enroll_in_browser(first, site, "p1")
    await enroll_in_browser(second, site, "p2")
    run_id = await site.start(DELETE)  # its wait pins the registry with both passkeys
    await first.goto(f"{site.browser_url}/approvals/{run_id}")
    await first.fill("textarea[name=justification]", "identity verified")
    await first.click("button.approve")
    await first.wait_for_selector("text=Recorded: 1 of 2 approvals so far.")
    await first.goto(f"{site.browser_url}/approvals/{run_id}")
    await first.wait_for_selector("#already")
    assert await first.locator("#decide").count() == 0  # no second click for the same person
    await second.goto(f"{site.browser_url}/approvals/{run_id}")
    assert "p1" in await second.locator("#approved-by").inner_text()
    await second.fill("textarea[name=justification]", "checked the request too")
    await second.click("button.approve")
    await second.wait_for_selector("text=Approved: the run resumes")
    summary = await site.harness.env.client.get_workflow_handle(
        run_id, result_type=RunSummary
    ).result()
    assert summary.outcome == Outcome.COMPLETED
    assert summary.steps[0].decision is not None
    assert summary.steps[0].decision.approved_by == ["p1", "p2"]
    # A POST without the CSRF token, from the signed-in browser, changes nothing.
    refused = await first.request.post(
        f"{site.browser_url}/approvals/{run_id}", form={"decision": "approve", "digest": "x"}
    )
    assert refused.status == 403


async def test_a_passkey_that_is_not_endorsed_signs_nothing(site: Site, browser: Browser) -> None:
    """An approver whose passkey an administrator revoked is asked by nothing; the run waits."""
    page, _, _ = await with_authenticator(browser)
    await sign_in(page, site, "lead")
    key_id = await enroll_in_browser(page, site, "lead")
    run_id = await site.start(REFUND_400)
    await page.goto(f"{site.browser_url}/approvals/{run_id}")
    await page.wait_for_selector("#decide")
    site.harness.registry.revoke_passkey("lead", key_id)
    await page.click("button.approve")
    await page.wait_for_selector("#passkey-status.error")
    assert "Enroll a passkey first" in await page.locator("#passkey-status").inner_text()
    assert (await pending_of(site.harness.env.client, run_id)).approved_by == []


async def test_approver_credentials_from_the_cli(site: Site) -> None:
    env = {"TIERGATE_HOME": str(site.harness.home)}
    code, out = await tiergate_input(
        ["approvers", "password", "lead", "--password-stdin"], "a-new-secret-pw\n", env
    )
    assert code == 0, out
    assert Credentials(site.harness.settings.database()).verify_password("lead", "a-new-secret-pw")
    assert not Credentials(site.harness.settings.database()).verify_password(
        "lead", PASSWORDS["lead"]
    )
    code, out = await tiergate_input(
        ["approvers", "password", "lead", "--password-stdin"], "short\n", env
    )
    assert code == 2
    assert "at least 10 characters" in out
    code, out = await tiergate_input(["approvers", "token", "lead"], "", env)
    assert code == 0
    assert out.startswith("/signin/token/")
    code, out = await tiergate_input(["approvers", "token", "nobody"], "", env)
    assert code == 2


async def tiergate_input(args: list[str], stdin: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        TIERGATE,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return process.returncode or 0, out.decode()


async def test_every_response_carries_the_security_headers(site: Site) -> None:
    """Headers come from middleware, so no page, redirect or API answer goes without them."""
    async with httpx.AsyncClient(base_url=site.url, follow_redirects=False) as client:
        answers = [
            await client.get("/signin"),
            await client.get("/"),
            await client.post("/codec/decode", json={"payloads": []}),
            await client.post("/signout", data={}),
        ]
    for answer in answers:
        assert answer.headers["x-frame-options"] == "DENY", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"


async def test_a_cross_site_sign_out_changes_nothing(site: Site) -> None:
    """A post without the session's token is refused before any handler runs."""
    async with signed_in(site, "lead") as client:
        refused = await client.post("/signout", data={})
        assert refused.status_code == 403
        assert (await client.get("/")).status_code == 200


async def test_a_passkey_revoked_mid_wait_is_refused_by_the_run(site: Site) -> None:
    """The run asks the live registry when an answer arrives: a passkey revoked after the
    wait pinned the registry proves nothing, whoever sends the answer."""
    run_id = await site.start(REFUND_400)
    client = site.harness.env.client
    pending = await pending_of(client, run_id)
    soft = site.passkeys["lead"]
    site.harness.registry.revoke_passkey("lead", soft.passkey().key_id)
    answer = soft.sign(build_request(pending, "lead", ApprovalDecision.APPROVE, "ok", via="web"))
    with pytest.raises(ApprovalRefusedError) as refused:
        await submit(client, answer)
    assert refused.value.code == "key_revoked"
    assert (await pending_of(client, run_id)).approved_by == []
