"""`tiergate config show`: the effective settings, with secrets masked."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import BaseModel, SecretStr, ValidationError
from rich.table import Table

from tiergate.cli._render import console
from tiergate.settings import Settings

config_app = typer.Typer(
    help="Every setting's effective value and the variable that sets it (secrets masked).",
    no_args_is_help=True,
)
MASK = "********"


def masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def load_settings() -> Settings:
    """Settings, or an exit naming each bad variable and its fix."""
    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(p) for p in problem["loc"])
            where = f"TIERGATE_{field.upper()}" if field else "settings"
            console.print(f"[red]error:[/red] {where}: {problem['msg']}")
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every setting's effective value and the variable that sets it (secrets masked)."""
    settings = load_settings()
    values = {name: masked(getattr(settings, name)) for name in Settings.model_fields}
    if as_json:
        print(json.dumps(values, indent=2, default=str))
        return
    table = Table("variable", "value")
    for name, value in values.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        table.add_row(f"TIERGATE_{name.upper()}", shown)
    console.print(table)
