"""`tiergate store migrate|grant|show`: the shared store's schema and who may change what.

Run as the store's owner role (the administrator's or a deploy job's
``TIERGATE_DATABASE_URL``): `migrate` brings the schema to this version, `grant` gives a
fleet's worker role and page role exactly what they need (`tiergate.state.ACCESS`), so
neither can mint sign-in links, lift a pause or roll the registry back.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tiergate.cli._render import console
from tiergate.errors import TiergateError
from tiergate.settings import Settings
from tiergate.state import ACCESS, MIGRATIONS, RoleKind, grant

store_app = typer.Typer(help="The shared store: schema and database roles.", no_args_is_help=True)

Role = Annotated[str | None, typer.Option(help="A database role to grant this kind's access to.")]


@store_app.command("migrate")
def migrate(worker: Role = None, web: Role = None) -> None:
    """Bring the store to this version's schema; with --worker/--web, grant those roles
    their access too (what a deploy job runs before the fleet starts)."""
    settings = Settings()
    try:
        database = settings.database()
        console.print(f"{database.shown}: schema version {MIGRATIONS[-1].version}")
        roles: list[tuple[str | None, RoleKind]] = [(worker, "worker"), (web, "web")]
        for role, kind in roles:
            if role is not None:
                grant(database, role, kind)
                console.print(f"granted {kind} access to {role}")
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


@store_app.command("access")
def access() -> None:
    """What a worker role and a page role may do, table by table."""
    for kind, tables in ACCESS.items():
        console.print(f"[bold]{kind}[/bold]")
        for table, privileges in tables.items():
            console.print(f"  {table:<22} {', '.join(privileges)}")
