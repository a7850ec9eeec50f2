"""Issue #20, item 7: sign-in hardened at the edges.

Cookies are Secure whenever the page is served over TLS (its own, or a trusted proxy's) or
configured so; an unknown name costs the same scrypt work as a known one; failed tries back
off exponentially per client and per name instead of locking a name out; the limiter's
memory is bounded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import Harness
from tests.web_client import form_csrf
from tiergate.approvals import Credentials
from tiergate.cluster import free_port
from tiergate.state import open_database
from tiergate.web import (
    TLS,
    Limiter,
    SharedLimiter,
    SignInLimits,
    WebContext,
    WebServer,
    build_app,
)
from tiergate.web._context import CLIENT_CAP, FORGET_AFTER, NAME_CAP


def self_signed(folder: Path) -> TLS:
    """A certificate for 127.0.0.1, made here (nothing is downloaded)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    tls = TLS(folder / "cert.pem", folder / "key.pem")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


async def signin_cookie(url: str, verify: Any = True, headers: dict[str, str] | None = None) -> str:
    async with httpx.AsyncClient(base_url=url, verify=verify) as client:
        return (await client.get("/signin", headers=headers or {})).headers["set-cookie"]


class TestSecureCookies:
    async def test_over_tls_every_cookie_is_secure(self, harness: Harness, tmp_path: Path) -> None:
        tls = self_signed(tmp_path)
        app = build_app(WebContext(harness.env.client, harness.settings))
        async with WebServer(app, port=free_port(), tls=tls) as server:
            assert server.url.startswith("https://")
            trusting = ssl.create_default_context(cafile=str(tls.cert))
            cookie = await signin_cookie(server.url, verify=trusting)
        assert "Secure" in cookie
        assert "HttpOnly" in cookie

    async def test_plain_http_is_not_secure_unless_configured(self, harness: Harness) -> None:
        plain = build_app(WebContext(harness.env.client, harness.settings))
        forced = build_app(
            WebContext(
                harness.env.client, harness.settings.model_copy(update={"web_secure_cookies": True})
            )
        )
        async with (
            WebServer(plain, port=free_port()) as a,
            WebServer(forced, port=free_port()) as b,
        ):
            assert "Secure" not in await signin_cookie(a.url)
            assert "Secure" in await signin_cookie(b.url)

    async def test_behind_a_trusted_tls_proxy_cookies_are_secure(self, harness: Harness) -> None:
        app = build_app(WebContext(harness.env.client, harness.settings))
        proxied = {"X-Forwarded-Proto": "https"}
        async with (
            WebServer(app, port=free_port(), forwarded_allow_ips="127.0.0.1") as trusting,
            WebServer(app, port=free_port()) as not_trusting,
        ):
            assert "Secure" in await signin_cookie(trusting.url, headers=proxied)
            # A client cannot claim TLS to a server not told to trust a proxy.
            assert "Secure" not in await signin_cookie(not_trusting.url, headers=proxied)


async def test_an_unknown_name_costs_the_same_scrypt_work(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    Credentials(harness.settings.database()).set_password("lead", "lead-password-1")
    app = build_app(WebContext(harness.env.client, harness.settings))
    calls: list[int] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(kwargs.get("n", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)  # the module _credentials calls
    async with (
        WebServer(app, port=free_port()) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        csrf = form_csrf((await client.get("/signin")).text)
        for name in ("nobody-such", "lead"):
            response = await client.post(
                "/signin", data={"csrf": csrf, "name": name, "password": "not-the-password"}
            )
            assert response.status_code == 401
            csrf = form_csrf(response.text)
    assert len(calls) == 2
    assert calls[0] == calls[1]  # the same cost parameters, known name or not


@pytest.fixture(params=["memory", "shared"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> SignInLimits:
    """The in-process limiter and the one every page replica shares through the store."""
    if request.param == "memory":
        return Limiter()
    return SharedLimiter(open_database(f"sqlite:///{tmp_path / 'limits.sqlite'}"))


class TestBackoff:
    def test_failures_back_off_exponentially_instead_of_locking(
        self, limiter: SignInLimits
    ) -> None:
        for _ in range(5):
            limiter.failed("ip:1.2.3.4", now=0.0)
        assert limiter.blocked("ip:1.2.3.4", now=0.0) == 1.0
        assert limiter.blocked("ip:1.2.3.4", now=1.0) == 0.0
        for _ in range(4):
            limiter.failed("ip:1.2.3.4", now=1.0)
        assert limiter.blocked("ip:1.2.3.4", now=1.0) == 16.0
        assert limiter.blocked("ip:1.2.3.4", now=1.0 + FORGET_AFTER + 1) == 0.0

    def test_a_name_is_never_held_back_long_however_often_it_is_guessed(
        self, limiter: SignInLimits
    ) -> None:
        for second in range(200):
            limiter.failed("ip:6.6.6.6", "name:lead", now=float(second))
        assert limiter.blocked("name:lead", now=200.0) <= NAME_CAP
        assert limiter.blocked("ip:6.6.6.6", now=200.0) == pytest.approx(CLIENT_CAP - 1)
        limiter.succeeded("name:lead")
        assert limiter.blocked("name:lead", now=200.0) == 0.0

    def test_memory_is_bounded(self) -> None:
        limiter = Limiter(max_keys=100)
        for n in range(10_000):
            limiter.failed(f"ip:10.0.{n // 256}.{n % 256}", f"name:guess-{n}", now=float(n))
        assert len(limiter.entries) == 100
        assert "name:guess-9999" in limiter.entries

    def test_the_shared_table_is_bounded_too(self, tmp_path: Path) -> None:
        database = open_database(f"sqlite:///{tmp_path / 'limits.sqlite'}")
        limiter = SharedLimiter(database, max_keys=20)
        for n in range(100):
            limiter.failed(f"ip:10.0.0.{n}", f"name:guess-{n}", now=float(n))
        rows = database.transaction(lambda tx: tx.all("SELECT key FROM signin_failures"))
        assert len(rows) == 20
        assert ("name:guess-99",) in rows


def test_page_replicas_share_one_backoff(database_url: str) -> None:
    """A guesser who spreads tries over replicas waits as long as one trying a single one."""
    here, there = (
        SharedLimiter(open_database(database_url)),
        SharedLimiter(open_database(database_url)),
    )
    for _ in range(3):
        here.failed("ip:6.6.6.6", "name:lead", now=10.0)
    for _ in range(3):
        there.failed("ip:6.6.6.6", "name:lead", now=10.0)
    assert here.blocked("ip:6.6.6.6", now=10.0) == there.blocked("name:lead", now=10.0) == 2.0
