"""`tiergate rollout start|status|promote|rollback AGENT`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from tiergate import observe as telemetry
from tiergate.cli._render import console
from tiergate.cli._report import parse_since
from tiergate.cli._wiring import toolkit
from tiergate.cluster import connect, ensure_search_attributes
from tiergate.errors import TiergateError
from tiergate.rollout import Rollout, RolloutError, Status, resolve_version, status, store_for
from tiergate.settings import Settings

rollout_app = typer.Typer(
    help="Shadow and canary rollouts of agent versions.", no_args_is_help=True
)


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(2)


def _current(settings: Settings, agent: str) -> Rollout:
    rollout = store_for(settings).get(agent)
    if rollout is None or rollout.candidate is None:
        _fail(RolloutError(f"agent {agent} has no candidate in rollout"))
    assert rollout is not None
    return rollout


@rollout_app.command("start")
def rollout_start(
    agent: str,
    candidate: Annotated[str, typer.Option(help="The candidate's agent version.")],
    mode: Annotated[str, typer.Option(help="shadow or canary.")] = "shadow",
    share: Annotated[float, typer.Option(help="Canary: share of new runs (0-1).")] = 0.1,
    key: Annotated[
        str, typer.Option(help="Input field that keeps routing sticky.")
    ] = "customer_id",
    primary: Annotated[
        str | None,
        typer.Option(
            help="The primary version (default: the current one; needed when the agents "
            "folder holds several versions and no rollout exists yet)."
        ),
    ] = None,
) -> None:
    """Put CANDIDATE beside the agent's current version (the primary)."""
    settings = Settings()
    if mode not in ("shadow", "canary"):
        _fail(RolloutError(f"mode {mode!r}: use shadow or canary"))
    if not 0 <= share <= 1:
        _fail(RolloutError(f"share {share}: use a number between 0 and 1"))
    try:
        existing = store_for(settings).get(agent)
        if primary is not None:
            primary = resolve_version(settings, agent, primary)
        elif existing is not None:
            primary = existing.primary
        else:
            primary = resolve_version(settings, agent)
        version = resolve_version(settings, agent, candidate)
    except TiergateError as error:
        _fail(error)
    if version == primary:
        _fail(RolloutError(f"{candidate} is already the primary version of {agent}"))
    assert primary is not None
    chosen = primary

    def start(current: Rollout | None) -> Rollout:
        rollout = current or Rollout(agent=agent, primary=chosen)
        rollout.primary, rollout.candidate, rollout.key = chosen, version, key
        rollout.mode = "canary" if mode == "canary" else "shadow"
        rollout.share = share if mode == "canary" else 0.0
        rollout.log(
            "start", f"{mode} of {version} beside {chosen}, share {rollout.share}, key {key}"
        )
        return rollout

    store_for(settings).change(agent, start)
    console.print(f"{agent}: {mode} of {version} beside primary {primary}")


def _show(result: Status) -> None:
    r = result.rollout
    console.print(
        f"[bold]{r.agent}[/bold]: primary {r.primary}, candidate {r.candidate or '–'}, mode "
        f"{r.mode}" + (f", share {r.share:.2f} by {r.key}" if r.mode == "canary" else "")
    )
    table = Table("figure", f"primary {r.primary}", f"candidate {r.candidate or '–'}")
    c = result.candidate
    for name in (
        "runs",
        "finished",
        "success_rate",
        "cost_per_completed_task",
        "violations_per_run",
        "escalation_rate",
    ):
        p_value = getattr(result.primary, name)
        c_value = getattr(c, name) if c else None
        table.add_row(name, _fmt(p_value), _fmt(c_value))
    logged = sorted(set(result.primary.log_only_flips) | set(c.log_only_flips if c else {}))
    for pid in logged:  # what each log-only policy would have changed, had it been enforced
        table.add_row(
            f"would flip: {pid}",
            str(result.primary.log_only_flips.get(pid, 0)),
            str(c.log_only_flips.get(pid, 0)) if c else "–",
        )
    console.print(table)
    if result.shadow is not None:
        s = result.shadow
        console.print(
            f"shadow re-runs of primary runs: {s.runs}; same outcome {s.same_outcome}; with "
            f"changed decisions {s.runs_with_changed_decisions}; new denials {s.new_denials}; "
            f"cost delta ${s.cost_delta_usd:+.6f}; writes simulated (not executed) "
            f"{s.simulated_writes}"
        )
    for v in result.verdicts:
        console.print(
            f"{'[green]ok[/green]' if v.ok else '[red]not met[/red]'} {v.name}: {v.detail}"
        )
    if result.verdicts:
        console.print("ready to promote" if result.ready else "not ready to promote")


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@rollout_app.command("status")
def rollout_status(
    agent: str,
    since: Annotated[str, typer.Option(help="Window: 24h, 7d, or a timestamp.")] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Figures of both versions from their runs; in shadow mode, shadow recent primary runs."""
    settings = Settings()
    if "log_level" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_level": "warning"})
    try:
        telemetry.install(settings, service="tiergate-rollout")  # shadows run workflow code here
    except TiergateError as error:
        _fail(error)
    start = parse_since(since, datetime.now(UTC))

    async def main() -> Status:
        client = await connect(settings)
        await ensure_search_attributes(client, settings.namespace)
        return await status(client, settings, agent, start, toolkit(settings))

    try:
        result = asyncio.run(main())
    except TiergateError as error:
        _fail(error)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _show(result)


@rollout_app.command("promote")
def rollout_promote(
    agent: str,
    force: Annotated[bool, typer.Option(help="Promote without the criteria being met.")] = False,
    since: str = "24h",
) -> None:
    """Make the candidate the primary: new runs get it."""
    settings = Settings()
    rollout = _current(settings, agent)
    if not force:
        start = parse_since(since, datetime.now(UTC))

        async def check() -> Status:
            return await status(await connect(settings), settings, agent, start, toolkit(settings))

        try:
            result = asyncio.run(check())
        except TiergateError as error:
            _fail(error)
        if rollout.mode == "canary" and not result.ready:
            unmet = ", ".join(v.name for v in result.verdicts if not v.ok)
            _fail(RolloutError(f"promotion criteria not met ({unmet})", fix="wait, or --force"))
    checked = rollout.candidate
    assert checked is not None  # _current refuses a rollout without one

    def promote(current: Rollout | None) -> Rollout:
        if current is None or current.candidate != checked:
            raise RolloutError(
                f"agent {agent}'s rollout changed while it was checked", fix="promote again"
            )
        previous = current.primary
        current.primary, current.candidate = checked, None
        current.mode, current.share = "off", 0.0
        current.log("promote", f"{checked} replaces {previous}" + (" (forced)" if force else ""))
        return current

    try:
        before = rollout.primary
        store_for(settings).change(agent, promote)
    except RolloutError as error:
        _fail(error)
    console.print(f"{agent}: {checked} is now the primary (was {before})")


@rollout_app.command("rollback")
def rollout_rollback(agent: str) -> None:
    """Take the candidate out: every new run gets the primary."""
    settings = Settings()
    rollout = _current(settings, agent)
    dropped = rollout.candidate

    def rollback(current: Rollout | None) -> Rollout:
        assert current is not None  # rollouts are never deleted
        current.candidate, current.mode, current.share = None, "off", 0.0
        current.log("rollback", f"{dropped} withdrawn; {current.primary} serves every run")
        return current

    store_for(settings).change(agent, rollback)
    console.print(f"{agent}: candidate {dropped} rolled back; {rollout.primary} serves every run")
