"""The approvals web page: routes over real HTTP, and the flows in a real Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import Harness, call, final, scripted
from tests.test_cli import TIERGATE
from tiergate.approvals._credentials import Credentials
from tiergate.approvals.client import pending_of
from tiergate.cluster import free_port
from tiergate.core import Outcome, RunSummary
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
    credentials = Credentials(harness.home)
    for name, role in roles.items():
        harness.registry.add(name, role)
        credentials.set_password(name, PASSWORDS[name])
    agent = harness.add_agent("webbed")
    context = WebContext(harness.env.client, harness.settings, ui_url="http://ui.example")
    async with harness.worker(), WebServer(build_app(context), port=free_port()) as server:
        yield Site(harness, context, server.url, agent)


@contextlib.asynccontextmanager
async def signed_in(site: Site, name: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.url, follow_redirects=False) as client:
        yield await _sign_in(client, name)


async def _sign_in(client: httpx.AsyncClient, name: str) -> httpx.AsyncClient:
    page = await client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    response = await client.post(
        "/signin", data={"csrf": csrf.group(1), "name": name, "password": PASSWORDS[name]}
    )
    assert response.status_code == 303, response.text
    return client


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


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
        for session in site.context.sessions.values():
            session.expires = 0
        response = await client.get("/")
        assert response.status_code == 401
        assert "Your session has expired" in response.text


async def test_decide_refuses_missing_csrf_unauthorized_and_decided(site: Site) -> None:
    run_id = await site.start(REFUND_400)
    async with signed_in(site, "lead") as lead, signed_in(site, "fin") as fin:
        page = await lead.get(f"/approvals/{run_id}")
        assert page.status_code == 200
        assert "payments.issue_refund" in page.text
        digest = re.search(r'name="digest" value="([^"]+)"', page.text)
        assert digest is not None
        data = {"decision": "approve", "digest": digest.group(1), "justification": "ok"}
        refused = await lead.post(f"/approvals/{run_id}", data=data)
        assert refused.status_code == 403
        assert "security token is missing or wrong" in refused.text
        # An approver whose role the approver policy does not cover sees nothing of the run.
        assert run_id not in (await fin.get("/")).text
        assert (await fin.get(f"/approvals/{run_id}")).status_code == 404
        fin_csrf = form_csrf((await fin.get("/")).text)
        forbidden = await fin.post(f"/approvals/{run_id}", data={**data, "csrf": fin_csrf})
        assert forbidden.status_code == 403
        assert (await pending_of(site.harness.env.client, run_id)).approved_by == []
        done = await lead.post(f"/approvals/{run_id}", data={**data, "csrf": form_csrf(page.text)})
        assert done.status_code == 200, done.text
        assert "Approved: the run resumes" in done.text
        again = await lead.post(f"/approvals/{run_id}", data={**data, "csrf": form_csrf(page.text)})
        assert again.status_code == 409
        assert "no longer waiting" in again.text


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
    await page.goto(f"{site.url}/signin")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORDS[name])
    await page.click("button[type=submit]")
    await page.wait_for_selector("#queue")


async def test_approve_a_large_refund_in_the_browser(site: Site, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = await (await browser.new_context()).new_page()
    await sign_in(page, site, "lead")
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
    assert [(a.approver, a.via, a.verified) for a in wait.approvals] == [("lead", "web", True)]


async def test_dual_control_with_two_browsers(site: Site, browser: Browser) -> None:
    run_id = await site.start(DELETE)
    first = await (await browser.new_context()).new_page()
    second = await (await browser.new_context()).new_page()
    await sign_in(first, site, "p1")
    await sign_in(second, site, "p2")
    await first.goto(f"{site.url}/approvals/{run_id}")
    await first.fill("textarea[name=justification]", "identity verified")
    await first.click("button.approve")
    await first.wait_for_selector("text=Recorded: 1 of 2 approvals so far.")
    await first.goto(f"{site.url}/approvals/{run_id}")
    await first.wait_for_selector("#already")
    assert await first.locator("#decide").count() == 0  # no second click for the same person
    await second.goto(f"{site.url}/approvals/{run_id}")
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
        f"{site.url}/approvals/{run_id}", form={"decision": "approve", "digest": "x"}
    )
    assert refused.status == 403


async def test_one_time_links_history_and_the_rows_fragment(site: Site) -> None:
    token = Credentials(site.harness.home).issue_token("lead", minutes=5)
    async with httpx.AsyncClient(base_url=site.url) as client:
        assert (await client.get("/queue/rows")).status_code == 401
        assert (await client.get(f"/signin/token/{token}")).status_code == 303
        run_id = await site.start(REFUND_400)
        rows = await client.get("/queue/rows")
        assert f'data-run="{run_id}"' in rows.text
        page = (await client.get(f"/approvals/{run_id}")).text
        form = dict(re.findall(r'name="(csrf|digest)" value="([^"]+)"', page))
        denied = await client.post(
            f"/approvals/{run_id}",
            data={**form, "decision": "deny", "justification": "no carrier claim yet"},
        )
        assert "Denied: the run resumes (denied)" in denied.text
        await site.harness.env.client.get_workflow_handle(run_id).result()
        history = (await client.get("/history")).text
        assert run_id in history
        assert "deny by lead via web" in history
    async with httpx.AsyncClient(base_url=site.url) as other:
        reused = await other.get(f"/signin/token/{token}")
        assert reused.status_code == 401
        assert "invalid, used or expired" in reused.text


async def test_approver_credentials_from_the_cli(site: Site) -> None:
    env = {"TIERGATE_HOME": str(site.harness.home)}
    code, out = await tiergate_input(
        ["approvers", "password", "lead", "--password-stdin"], "a-new-secret-pw\n", env
    )
    assert code == 0, out
    assert Credentials(site.harness.home).verify_password("lead", "a-new-secret-pw")
    assert not Credentials(site.harness.home).verify_password("lead", PASSWORDS["lead"])
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
