"""`tiergate approvers|approvals|reviews`: the approver's front door in a terminal.

Exit codes a script can use: 0 done, 2 bad usage or config, 3 refused by the run,
4 the run is not waiting for an approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from temporalio.client import WorkflowHistory

from tiergate.activities import ReviewStore
from tiergate.approvals import (
    ApproverRegistry,
    generate_key,
    public_key_text,
    read_private_key,
    write_private_key,
)
from tiergate.approvals._credentials import Credentials
from tiergate.approvals._enrollments import PasskeyEnrollments, read_enrollment_code
from tiergate.approvals.client import answer, list_pending, pending_of
from tiergate.cli._render import console
from tiergate.cluster import connect
from tiergate.core import ApprovalDecision, ApprovalReceipt, PendingAction
from tiergate.errors import ApprovalRefusedError, ApproverError, NotWaitingError, ReviewError
from tiergate.forensics import audit_approvals
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.web import TLS, WebContext, WebServer, build_app

EXIT_REFUSED = 3
EXIT_NOT_WAITING = 4

approvers_app = typer.Typer(help="Manage approvers and their keys.", no_args_is_help=True)
approvals_app = typer.Typer(help="Answer pending approvals.", no_args_is_help=True)
reviews_app = typer.Typer(
    help="Review sampled tier-2 actions after the fact.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AsApprover = Annotated[str, typer.Option("--as", help="The approver answering (holds the key).")]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="TIERGATE_APPROVER_KEY",
        help="The approver's private key file (from `tiergate approvers keygen`).",
    ),
]


def _registry() -> ApproverRegistry:
    return ApproverRegistry.of(Settings())


def _new_key(path: Path) -> str:
    """A new key pair, its private key written to ``path`` (0600, never overwritten);
    returns the public key."""
    key = generate_key()
    try:
        write_private_key(path, key)
    except FileExistsError:
        console.print(f"[red]error:[/red] {path} exists; keep using it or pick another --out")
        raise typer.Exit(2) from None
    return public_key_text(key)


@approvers_app.command("keygen")
def approvers_keygen(
    name: str,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the private key (default ~/.tiergate/keys/NAME.pem)."),
    ] = None,
) -> None:
    """On the approver's own machine: make their key pair, keep the private key here (0600),
    and print the public key for an administrator to register."""
    path = out or Path.home() / ".tiergate" / "keys" / f"{name}.pem"
    public = _new_key(path)
    console.print(f"private key: {path} (mode 0600; it never leaves this machine)")
    console.print(f"public key: {public}")
    console.print(f"register it: tiergate approvers add {name} --role ROLE --public-key {public}")


@approvers_app.command("add")
def approvers_add(
    name: str,
    role: Annotated[list[str], typer.Option("--role", help="Repeat for several.")],
    public_key: Annotated[
        str | None,
        typer.Option(
            help="The approver's public key (`tiergate approvers keygen` on their machine), "
            "for answers from the CLI."
        ),
    ] = None,
    demo_key: Annotated[
        bool,
        typer.Option(
            "--demo-key",
            help="Make a key pair on this host, labeled demo (demo and dev only: whoever "
            "reads this host can sign as them).",
        ),
    ] = False,
) -> None:
    """Register an approver. With --public-key they answer from the CLI with their own key;
    with neither option they answer on the web page, with a passkey they enroll after their
    first sign-in (`tiergate approvers passkeys endorse`)."""
    try:
        entry, key_path = _registry().add(name, role, public_key, demo_key=demo_key)
    except ApproverError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(
        f"added [bold]{entry.name}[/bold] roles {', '.join(entry.roles)} "
        f"key {entry.key_id or 'none yet (web page: enroll a passkey)'}"
    )
    if key_path is not None:
        console.print(
            f"demo key: {key_path} (mode 0600; made on this host, for demo and dev: in "
            "production have the approver run `tiergate approvers keygen` and pass --public-key)"
        )


@approvers_app.command("list")
def approvers_list(as_json: JsonFlag = False) -> None:
    """Registered approvers, and whether this host's workers would take each entry
    (endorsed by an administrator in TIERGATE_REGISTRY_ADMINS)."""
    admins = Settings().registry_admins
    approvers = _registry().snapshot().approvers
    if as_json:
        listed = [
            {**a.model_dump(), "trusted": a.endorsed_by(admins, "approvers")}
            for a in approvers.values()
        ]
        print(json.dumps(listed, indent=2))
        return
    table = Table("name", "roles", "keys", "status", "since", "endorsed")
    for a in approvers.values():
        keys = [a.key_id + (" (demo)" if a.demo_key else "")] if a.key_id else []
        keys += [p.key_id for p in a.passkeys]
        status = "[green]active[/green]" if a.active else f"[red]revoked {a.revoked_at}[/red]"
        endorsed = (
            "[green]yes[/green]"
            if a.endorsed_by(admins, "approvers")
            else "[red]no: workers ignore it[/red]"
        )
        table.add_row(
            a.name,
            ", ".join(a.roles),
            "\n".join(keys) or "none",
            status,
            a.created_at[:19],
            endorsed,
        )
    console.print(table)


passkeys_app = typer.Typer(
    help="Endorse and revoke the passkeys approvers enroll on the web page.",
    no_args_is_help=True,
)
approvers_app.add_typer(passkeys_app, name="passkeys")


@passkeys_app.command("waiting")
def passkeys_waiting() -> None:
    """Passkeys enrolled on the web page that no administrator has endorsed yet."""
    waiting = PasskeyEnrollments(Settings().database()).all()
    if not waiting:
        console.print("no enrollment is waiting")
    for name, passkeys in waiting.items():
        for passkey in passkeys:
            console.print(f"{name}  {passkey.key_id}  {passkey.origin}  {passkey.created_at[:19]}")


@passkeys_app.command("endorse")
def passkeys_endorse(
    name: str,
    enrollment: Annotated[
        str, typer.Argument(help="The code the approver's page shows, or its key id.")
    ],
) -> None:
    """Endorse a passkey ``name`` enrolled: from then on it proves their answers. Compare its
    key id with the one on the approver's own screen first: a compromised page could have
    enrolled a passkey of its own."""
    enrollments = PasskeyEnrollments(Settings().database())
    try:
        passkey = enrollments.find(name, enrollment)
        if passkey is None:
            enrolled_by, passkey = read_enrollment_code(enrollment)
            if enrolled_by != name:
                raise ApproverError(
                    f"that code is {enrolled_by!r}'s enrollment, not {name!r}'s",
                    fix="endorse each approver's own code under their own name",
                )
        entry = _registry().add_passkey(name, passkey)
    except ApproverError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    enrollments.remove(name, passkey.key_id)
    console.print(
        f"endorsed passkey {passkey.key_id} for [bold]{entry.name}[/bold] "
        f"({passkey.origin}); they now approve with it on the web page"
    )


@passkeys_app.command("revoke")
def passkeys_revoke(name: str, key: Annotated[str, typer.Argument(help="Its key id.")]) -> None:
    """Revoke one of ``name``'s passkeys: answers it proves are refused, even mid-wait."""
    try:
        _registry().revoke_passkey(name, key)
    except ApproverError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"revoked passkey {key} of {name}")


@approvers_app.command("revoke")
def approvers_revoke(name: str) -> None:
    """Revoke an approver's key: their answers are refused from now on, even mid-wait."""
    try:
        entry = _registry().revoke(name)
    except ApproverError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"revoked {entry.name} ({entry.key_id})")


def _age(since: str) -> str:
    if not since:
        return ""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds())
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def _left(until: str) -> str:
    if not until:
        return ""
    seconds = int((datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds())
    return "[red]overdue[/red]" if seconds < 0 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _pending_row(p: PendingAction, redactor: Redactor) -> dict[str, Any]:
    return {
        "run_id": p.run_id,
        "agent": p.agent,
        "step": p.step,
        "tool": p.tool,
        "call": redactor.line(p.arguments),
        "tier": p.tier,
        "age": _age(p.waiting_since),
        "sla_left": _left(p.sla_at),
        "approvals": f"{len(p.approved_by)}/{p.required_approvals}",
        "escalated": p.escalated,
    }


@approvals_app.command("list")
def approvals_list(as_json: JsonFlag = False) -> None:
    """Pending approvals across runs (from Temporal visibility)."""
    settings = Settings()
    redactor = Redactor(settings.redaction, partial_emails=True)

    async def main() -> list[PendingAction]:
        return await list_pending(await connect(settings))

    pending = asyncio.run(main())
    if as_json:
        print(json.dumps([p.model_dump(mode="json") for p in pending], indent=2))
        return
    table = Table("run", "agent", "tool", "call", "tier", "age", "SLA left", "approvals")
    for p in pending:
        row = _pending_row(p, redactor)
        tier = f"[red]{p.tier}[/red]" if p.tier >= 4 else str(p.tier)
        table.add_row(
            p.run_id,
            p.agent,
            p.tool,
            escape(row["call"]),
            tier,
            row["age"],
            row["sla_left"],
            row["approvals"],
        )
    console.print(table if pending else "no pending approvals")


def _exit_for(error: Exception) -> typer.Exit:
    if isinstance(error, ApprovalRefusedError):
        console.print(f"[red]refused[/red] ({error.code}): {error.reason}")
        return typer.Exit(EXIT_REFUSED)
    if isinstance(error, NotWaitingError):
        console.print(f"[yellow]not waiting:[/yellow] {error}")
        return typer.Exit(EXIT_NOT_WAITING)
    console.print(f"[red]error:[/red] {error}")
    return typer.Exit(2)


@approvals_app.command("show")
def approvals_show(run_id: str, as_json: JsonFlag = False) -> None:
    """The action a run waits on: tool, arguments, reason, tier, policies, SLA."""

    async def main() -> PendingAction:
        return await pending_of(await connect(Settings()), run_id)

    try:
        p = asyncio.run(main())
    except NotWaitingError as error:
        raise _exit_for(error) from None
    if as_json:
        print(p.model_dump_json(indent=2))
        return
    console.print(
        f"[bold]{p.run_id}[/bold] step {p.step} — agent {p.agent}, requested by {p.requester}"
    )
    console.print(f"action: [cyan]{p.tool}[/cyan] {json.dumps(p.arguments)}")
    console.print(f"model's reason: {p.reason}")
    console.print(f"tier {p.tier} ({p.verdict.value}) by policies {', '.join(p.policy_ids)}")
    console.print(
        f"approvals {len(p.approved_by)}/{p.required_approvals}: {', '.join(p.approved_by) or '-'}"
    )
    console.print(
        f"waiting {_age(p.waiting_since)}; SLA left {_left(p.sla_at)}; expires {p.expires_at}"
    )


def _answer(
    run_id: str,
    approver: str,
    decision: ApprovalDecision,
    text: str,
    edit: dict[str, Any] | None,
    key_path: Path | None,
) -> ApprovalReceipt:
    async def main() -> ApprovalReceipt:
        settings = Settings()
        # The approver's own key file; a demo or dev approver's sits under the home.
        key = (
            read_private_key(key_path)
            if key_path
            else ApproverRegistry.of(settings).private_key(approver)
        )
        client = await connect(settings)
        pending = await pending_of(client, run_id)
        return await answer(client, key, pending, approver, decision, text, edit)

    try:
        return asyncio.run(main())
    except (ApprovalRefusedError, NotWaitingError, ApproverError) as error:
        raise _exit_for(error) from None


@approvals_app.command("approve")
def approvals_approve(
    run_id: str,
    approver: AsApprover,
    justification: Annotated[str, typer.Option(help="Why; required for tier 4.")] = "",
    edit: Annotated[
        str | None, typer.Option(help="Approve these arguments instead (JSON).")
    ] = None,
    key: KeyOption = None,
) -> None:
    """Approve the pending action (optionally with edited arguments, gated again)."""
    try:
        edited = json.loads(edit) if edit else None
    except json.JSONDecodeError as error:
        console.print(f"[red]error:[/red] --edit is not JSON: {error}")
        raise typer.Exit(2) from None
    receipt = _answer(run_id, approver, ApprovalDecision.APPROVE, justification, edited, key)
    color = "green" if receipt.status == "approved" else "yellow"
    console.print(
        f"[{color}]{receipt.status}[/{color}]: approvals {len(receipt.approved_by)}/{receipt.required}"
        f" ({', '.join(receipt.approved_by)})"
    )


@approvals_app.command("deny")
def approvals_deny(
    run_id: str,
    approver: AsApprover,
    reason: Annotated[str, typer.Option(help="Why the action must not run.")] = "",
    key: KeyOption = None,
) -> None:
    """Deny the pending action with a reason."""
    receipt = _answer(run_id, approver, ApprovalDecision.DENY, reason, None, key)
    console.print(f"[red]{receipt.status}[/red]")


def _reviews() -> ReviewStore:
    return ReviewStore(Settings().database())


@reviews_app.command("list")
def reviews_list(
    include_reviewed: Annotated[
        bool, typer.Option("--all", help="Include reviewed items.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Sampled tier-2 actions waiting for a post-hoc look."""
    rows = _reviews().list(include_reviewed)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "run", "step", "tool", "arguments", "verdict")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["run_id"],
            str(r["step"]),
            r["tool"],
            json.dumps(r["item"]["arguments"]),
            r["verdict"] or "",
        )
    console.print(table if rows else "review queue is empty")


@reviews_app.command("show")
def reviews_show(review_id: int) -> None:
    """One sampled action with its decision and result."""
    try:
        print(json.dumps(_reviews().get(review_id), indent=2))
    except ReviewError as error:
        raise _exit_for(error) from None


@reviews_app.command("flag")
def reviews_flag(
    review_id: int,
    reviewer: AsApprover,
    reason: Annotated[str, typer.Option(help="What is wrong (or right) with it.")],
    ok: Annotated[bool, typer.Option("--ok", help="Mark as fine instead of a problem.")] = False,
) -> None:
    """Record a reviewer's verdict on a sampled action."""
    try:
        row = _reviews().flag(review_id, reviewer, "ok" if ok else "problem", reason)
    except ReviewError as error:
        raise _exit_for(error) from None
    console.print(f"review {row['id']}: {row['verdict']} by {row['reviewer']}")


@approvals_app.command("audit")
def approvals_audit(
    run_id: str,
    history: Annotated[
        Path | None, typer.Option("--history", help="A history JSON file instead of the server.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-verify a run's approvals from its history alone; exit 1 if anything fails."""
    if history is not None:
        recorded = WorkflowHistory.from_json(run_id, history.read_text(encoding="utf-8"))
    else:

        async def main() -> WorkflowHistory:
            client = await connect(Settings())
            return await client.get_workflow_handle(run_id).fetch_history()

        recorded = asyncio.run(main())
    audit = audit_approvals(recorded)
    if as_json:
        print(
            json.dumps(
                {"run_id": run_id, "ok": audit.ok, "findings": [vars(f) for f in audit.findings]},
                indent=2,
            )
        )
    else:
        for f in audit.findings:
            mark = "[green]verified[/green]" if f.ok else "[red]FAILED[/red]"
            console.print(f"step {f.step} {f.subject}: {mark} — {f.detail}")
        if not audit.findings:
            console.print("no approvals in this run")
    if not audit.ok:
        raise typer.Exit(1)


@approvers_app.command("password")
def approvers_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set the approver's web sign-in password (scrypt-hashed; kept out of the registry)."""
    if name not in _registry().snapshot().approvers:
        console.print(f"[red]error:[/red] no approver named {name!r}; add them first")
        raise typer.Exit(2)
    if password_stdin:
        import sys

        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        Credentials(Settings().database()).set_password(name, password)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"password set for {name}")


@approvers_app.command("token")
def approvers_token(
    name: str, minutes: Annotated[float, typer.Option(help="How long it stays valid.")] = 15
) -> None:
    """Issue a one-time web sign-in link for the approver."""
    if name not in _registry().snapshot().approvers:
        console.print(f"[red]error:[/red] no approver named {name!r}; add them first")
        raise typer.Exit(2)
    token = Credentials(Settings().database()).issue_token(name, minutes)
    print(f"/signin/token/{token}")


@approvals_app.command("web")
def approvals_web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    ui_url: Annotated[
        str, typer.Option(help="Temporal Web UI, for links to runs.")
    ] = "http://localhost:8233",
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key.")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Trust X-Forwarded-Proto/For from these proxy addresses (comma list)."),
    ] = None,
) -> None:
    """Serve the approvals web page against the configured Temporal.

    Serve it over TLS, with --tls-cert/--tls-key or behind a TLS proxy (--forwarded-allow-ips
    the proxy's address): cookies are then marked Secure."""
    settings = Settings()
    tls = TLS(tls_cert, tls_key) if tls_cert and tls_key else None

    async def main() -> None:
        client = await connect(settings)
        app = build_app(WebContext(client, settings, ui_url=ui_url))
        async with WebServer(
            app, host, port, tls=tls, forwarded_allow_ips=forwarded_allow_ips
        ) as server:
            console.print(f"approvals page at {server.browser_url} (Ctrl-C to stop)")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


admin_app = typer.Typer(help="The registry's administrator key.", no_args_is_help=True)


@admin_app.command("keygen")
def admin_keygen(
    out: Annotated[Path, typer.Option(help="Where to write the administrator's private key.")],
) -> None:
    """On the administrator's machine: make the key that endorses every approver and
    operator entry; workers are configured with its public half."""
    public = _new_key(out)
    console.print(f"administrator key: {out} (mode 0600; keep it off worker hosts)")
    console.print(f"set on the administrator's shell: TIERGATE_ADMIN_KEY={out}")
    console.print(
        f"set on every worker and the approvals page: TIERGATE_REGISTRY_ADMINS='[\"{public}\"]'"
    )
