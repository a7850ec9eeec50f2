"""`tiergate policy show|schema|what-if|promote`: the policies an agent runs under, and
the reviewed ways to change them."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer

from tiergate.cli._render import console, fail
from tiergate.cli._what_if import policy_what_if
from tiergate.cli._wiring import served_specs
from tiergate.config import load_agent, load_all_agents
from tiergate.core import AgentBundle
from tiergate.errors import PolicyError, TiergateError
from tiergate.policies import cedar_schema, promoted
from tiergate.settings import Settings

policy_app = typer.Typer(help="Inspect policies and try changes to them.", no_args_is_help=True)
policy_app.command("what-if")(policy_what_if)


@policy_app.command("show")
def policy_show(config_or_agent: str) -> None:
    """Print the Cedar an agent runs under: its files plus its compiled inline rules (its
    log-only policies after them)."""
    try:
        settings = Settings()
        bundle = load_agent(config_or_agent, settings.agents_dir, served_specs(settings))
    except TiergateError as error:
        fail(error)
    print(f"// policy version {bundle.policy.version}\n{bundle.policy.text}")
    if bundle.policy.log_only_text:
        print(f"// log-only: evaluated and recorded, not enforced\n{bundle.policy.log_only_text}")


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the Cedar schema generated from the tools this CLI's workers serve (every
    toolset loaded: TIERGATE_TOOLSETS and installed packages', else the demo's; and the
    listed tools of the MCP servers the agent configs name)."""
    try:
        specs = served_specs(Settings())
    except TiergateError as error:
        fail(error)
    print(cedar_schema(specs.values()), end="")


@policy_app.command("promote")
def policy_promote(
    policy_id: Annotated[str, typer.Argument(help="The @id of the log-only policy.")],
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies",
            help="Folder of the policy files (default: the agents folder, TIERGATE_AGENTS_DIR).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the change; write nothing.")
    ] = False,
) -> None:
    """Enforce a log-only policy: remove its @mode("log_only"), leaving its text as it was
    observed. The file's new content is a new policy version, pinned by runs started after
    the change; runs already going keep the version they started with."""
    settings = Settings()
    folder = policies or settings.agents_dir
    try:
        if folder is None or not folder.is_dir():
            raise PolicyError(
                f"no folder of policy files to change ({folder or 'TIERGATE_AGENTS_DIR unset'})",
                fix="pass --policies DIR, the folder the agent configs name their files in "
                "(tiergate's packaged policies are not changed in place: copy them there)",
            )
        path, text, changed = _find(folder, policy_id)
        before = _versions(settings, policy_id)
        diff = difflib.unified_diff(
            text.splitlines(keepends=True), changed.splitlines(keepends=True), str(path), str(path)
        )
        console.print("".join(diff), end="", markup=False, highlight=False)
        if dry_run:
            console.print("dry run: nothing written")
            return
        path.write_text(changed, encoding="utf-8")
        after = _versions(settings, policy_id)
    except TiergateError as error:
        console.print("[red]error:[/red]", str(error), soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"{policy_id} is enforced from now on in {path}")
    for agent, version in sorted(after.items()):
        console.print(
            f"{agent}: policy version {before.get(agent, '?')[:19]} → {version[:19]} "
            "(new runs; runs already going keep theirs)"
        )


def _find(folder: Path, policy_id: str) -> tuple[Path, str, str]:
    for path in sorted(folder.glob("*.cedar")):
        text = path.read_text(encoding="utf-8")
        changed = promoted(text, policy_id, str(path))
        if changed is not None:
            return path, text, changed
    raise PolicyError(
        f"no policy with @id({policy_id!r}) in the .cedar files of {folder}",
        fix='name a policy annotated @mode("log_only"); `tiergate report` lists them',
    )


def _versions(settings: Settings, policy_id: str) -> dict[str, str]:
    """The policy version of each agent whose policies include ``policy_id``."""
    bundles: dict[str, AgentBundle] = load_all_agents(settings.agents_dir, served_specs(settings))
    return {
        name: bundle.policy.version
        for name, bundle in bundles.items()
        if policy_id in bundle.policy.annotations
    }
