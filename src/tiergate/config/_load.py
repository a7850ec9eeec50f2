"""Read agent configs from YAML and assemble the bundle a run is pinned to.

This module does file I/O; workflows never import it. The worker calls it at start (to
refuse a bad config or policy early) and the `agent__load` activity calls it per run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tiergate.core import (
    AgentBundle,
    AgentConfig,
    AgentFile,
    McpServer,
    ModelSpec,
    ToolSpec,
    approver_schema,
)
from tiergate.errors import ConfigError
from tiergate.policies import build_bundle, cedar_schema, compile_rules, read_policy_file

#: The demo's agents and policies ship with tiergate and are found by name like your own.
PACKAGED_AGENTS = Path(__file__).resolve().parent.parent / "demo" / "agents"
PACKAGED_POLICIES = Path(__file__).resolve().parent.parent / "demo" / "policies"


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_agent_yaml(text: str, file: str) -> AgentConfig:
    """Parse and validate one agent config; errors name the file, the field and the reason."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}", file=file) from None
    if not isinstance(data, dict) or "agent" not in data:
        raise ConfigError(
            "expected a mapping with a top-level `agent:` key",
            file=file,
            fix="start the file with `agent:` as in the seed's agent_config.yaml",
        )
    try:
        return AgentFile.parse(data).agent
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            message, file=file, field=_format_location(tuple(first["loc"])) or "agent"
        ) from None


class _Memo:
    """The last ``size`` results of a pure function of file contents, by those contents.

    `agent__load` runs per run: it reads every agent file of the folders (to route the run
    and find its version) and compiles the one it pins. Parsing, validating and compiling
    (Cedar's validation) were most of its CPU, for files that rarely change. Keys hold the
    texts themselves, so a changed file is a miss however fast it was rewritten; a result is
    only ever handed out for exactly the inputs it was made from, and errors are not kept.
    """

    def __init__(self, size: int = 256) -> None:
        self._results: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self._results.move_to_end(key)
            return found

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._results[key] = value
            while len(self._results) > self._size:
                self._results.popitem(last=False)


_PARSED = _Memo()
_COMPILED = _Memo()


def load_agent_file(path: Path) -> AgentConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", file=str(path)) from None
    key = (str(path), text)
    if (parsed := _PARSED.get(key)) is not None:
        copy: AgentConfig = parsed.model_copy(deep=True)  # callers may change theirs
        return copy
    config = parse_agent_yaml(text, str(path))
    _PARSED.put(key, config.model_copy(deep=True))
    return config


def find_agent(name_or_path: str, agents_dir: Path | None, version: str | None = None) -> Path:
    """A config file by path, or by agent name in ``agents_dir`` then tiergate's agents/.

    With ``version`` (or ``NAME@VERSION``), only a config of that name whose version (or
    content-hash version) matches: several versions of an agent can sit side by side.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    if version is None and "@" in name_or_path:
        name_or_path, version = name_or_path.split("@", 1)
    if version is not None:
        return _find_version(name_or_path, version, agents_dir)
    for folder in [d for d in (agents_dir, PACKAGED_AGENTS) if d is not None]:
        for path in sorted(folder.glob("*.y*ml")):
            if path.stem == name_or_path:
                return path
            config = load_agent_file(path)
            if config.name == name_or_path:
                return path
    raise ConfigError(
        f"no agent config named {name_or_path!r}",
        fix=f"add {name_or_path}.yaml to the agents folder, or pass a path to a .yaml file",
    )


def agent_versions(name: str, agents_dir: Path | None) -> list[str]:
    """The versions of agent ``name`` found in ``agents_dir`` and tiergate's agents/."""
    found = []
    for folder in [d for d in (agents_dir, PACKAGED_AGENTS) if d is not None]:
        for path in sorted(folder.glob("*.y*ml")):
            config = load_agent_file(path)
            # A version in both folders is one version (the agents folder's file wins).
            if config.name == name and config.effective_version not in found:
                found.append(config.effective_version)
    return found


def _find_version(name: str, version: str, agents_dir: Path | None) -> Path:
    known = []
    for folder in [d for d in (agents_dir, PACKAGED_AGENTS) if d is not None]:
        for path in sorted(folder.glob("*.y*ml")):
            config = load_agent_file(path)
            if config.name != name:
                continue
            if version in (config.effective_version, config.version):
                return path
            known.append(config.effective_version)
    raise ConfigError(
        f"no config of agent {name!r} with version {version!r} (known: {known or 'none'})",
        fix="add the version's config file to the agents folder",
    )


def _resolve(relative: str, base: Path, fallback: Path) -> Path:
    path = Path(relative)
    if path.is_absolute():
        return path
    return base / path if (base / path).exists() else fallback / path


def _inline_script(spec: ModelSpec, base: Path, field: str, file: str) -> ModelSpec:
    if spec.provider != "scripted" or not isinstance(spec.script, str):
        return spec
    path = _resolve(spec.script, base, PACKAGED_AGENTS)
    try:
        steps = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot load script {path}: {error}", file=file, field=field) from None
    if not isinstance(steps, list):
        raise ConfigError(f"script {path} must be a list of model outputs", file=file, field=field)
    return spec.model_copy(update={"script": steps})


def tool_schemas_hash(config: AgentConfig, tools: Mapping[str, ToolSpec]) -> str:
    """sha256 of the allowlisted tools' argument schemas, tiers and kinds."""
    schemas = {
        name: spec.arguments | {"tier": spec.tier, "kind": str(spec.kind)}
        for name in sorted(config.allowed_tools)
        if (spec := tools.get(name)) is not None
    }
    canonical = json.dumps(schemas, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def compile_agent(config: AgentConfig, source: Path, tools: Mapping[str, ToolSpec]) -> AgentBundle:
    """Resolve policies and scripts of a validated config into a pinned bundle. The same
    config, files and tool specs give the bundle compiled before (see `_Memo`)."""
    key = _compile_key(config, source, tools)
    if key is not None and (known := _COMPILED.get(key)) is not None:
        bundle: AgentBundle = known.model_copy(deep=True)
        return bundle
    bundle = _compile(config, source, tools)
    if key is not None:
        _COMPILED.put(key, bundle.model_copy(deep=True))
    return bundle


def _compile_key(
    config: AgentConfig, source: Path, tools: Mapping[str, ToolSpec]
) -> tuple[str, ...] | None:
    """Everything `_compile` reads: the config, the text of each file it names where it
    would find it, and the worker's tool specs. None when a file cannot be read (the
    compile itself then says so)."""
    base = source.parent
    files = [
        _resolve(f, base, PACKAGED_POLICIES)
        for f in [*config.policy.files, *config.approvals.policy_files]
    ]
    files += [
        _resolve(spec.script, base, PACKAGED_AGENTS)
        for spec in config.models.values()
        if spec.provider == "scripted" and isinstance(spec.script, str)
    ]
    try:
        texts = [f"{path}\0{path.read_text(encoding='utf-8')}" for path in files]
    except OSError:
        return None
    specs = hashlib.sha256(
        "\0".join(spec.model_dump_json() for spec in tools.values()).encode()
    ).hexdigest()
    return (str(source), config.model_dump_json(), specs, *texts)


def _compile(config: AgentConfig, source: Path, tools: Mapping[str, ToolSpec]) -> AgentBundle:
    base = source.parent
    unknown = [name for name in config.tools.allowlist if name not in tools]
    if unknown:
        raise ConfigError(
            f"allowlist names unknown tools {unknown}",
            file=str(source),
            field="agent.tools.allowlist",
            fix=f"use registered tools: {sorted(tools)}",
        )
    for server in config.mcp_servers:
        missing = [name for name in server.tool_names() if name not in tools]
        if missing:
            raise ConfigError(
                f"MCP server {server.name!r} lists tools {missing} this worker does not serve",
                file=str(source),
                field="agent.mcp_servers",
                fix="start the worker with this agents folder, so it connects to the server",
            )
    models = {
        tier: _inline_script(spec, base, f"agent.models.{tier}.script", str(source))
        for tier, spec in config.models.items()
    }
    config = config.model_copy(update={"models": models})
    sources = [read_policy_file(_resolve(f, base, PACKAGED_POLICIES)) for f in config.policy.files]
    rules = compile_rules(config.policy.rules, tools)
    if rules:
        sources.append((f"{source}#policy.rules", rules))
    allowed = {name: tools[name] for name in config.allowed_tools}
    policy = build_bundle(sources, cedar_schema(tools.values(), allowed.values()))
    approver_sources = [
        read_policy_file(_resolve(f, base, PACKAGED_POLICIES))
        for f in config.approvals.policy_files
    ]
    return AgentBundle(
        approver_policy=build_bundle(
            approver_sources, approver_schema(allowed.values()), log_only=False
        ),
        config=config,
        config_hash=config.content_hash(),
        source=str(source),
        policy=policy,
        tools=allowed,
        other_tools=sorted(set(tools) - set(config.allowed_tools)),
        tool_schemas_hash=tool_schemas_hash(config, tools),
    )


def load_agent(
    name_or_path: str,
    agents_dir: Path | None,
    tools: Mapping[str, ToolSpec],
    version: str | None = None,
) -> AgentBundle:
    """Find, parse, compile and pin an agent by name (and version) or path."""
    path = find_agent(name_or_path, agents_dir, version)
    return compile_agent(load_agent_file(path), path, tools)


def load_all_agents(
    agents_dir: Path | None, tools: Mapping[str, ToolSpec]
) -> dict[str, AgentBundle]:
    """Every agent the worker will serve, checked now so a bad file refuses the worker.

    An agent in ``agents_dir`` that allowlists a tool the worker lacks refuses the worker,
    naming both. tiergate's packaged agents are the demo's: a worker serves them only when it
    serves all of their tools (a team's worker with its own toolsets does not).
    """
    bundles: dict[str, AgentBundle] = {}
    for folder in [d for d in (PACKAGED_AGENTS, agents_dir) if d is not None]:
        for path in sorted(folder.glob("*.y*ml")):
            config = load_agent_file(path)
            if folder == PACKAGED_AGENTS and not set(config.allowed_tools) <= set(tools):
                continue
            bundle = compile_agent(config, path, tools)
            bundles[bundle.config.name] = bundle
    return bundles


def declared_mcp_servers(agents_dir: Path | None) -> list[McpServer]:
    """The MCP servers the agent configs in ``agents_dir`` name, each once.

    Agents may share a server by declaring it alike (same reach); each may list different
    tools of it, and the worker serves their union. A shared tool listed differently by two
    agents, or one server name declared with two reaches, refuses (ConfigError naming both
    files), since one worker has one session and one spec per tool.
    """
    if agents_dir is None:
        return []
    merged: dict[str, tuple[McpServer, Path]] = {}
    for path in sorted(agents_dir.glob("*.y*ml")):
        for server in load_agent_file(path).mcp_servers:
            known = merged.get(server.name)
            if known is None:
                merged[server.name] = (server, path)
                continue
            first, where = known
            reach = ("command", "url", "env", "headers_env", "cwd", "timeout_seconds")
            if first.model_dump(include=set(reach)) != server.model_dump(include=set(reach)):
                raise ConfigError(
                    f"MCP server {server.name!r} is declared differently in {where}",
                    file=str(path),
                    field="agent.mcp_servers",
                    fix="declare a shared server alike everywhere, or give one another name",
                )
            for tool, spec in server.tools.items():
                if tool in first.tools and first.tools[tool] != spec:
                    raise ConfigError(
                        f"MCP tool {server.name}.{tool} is listed differently in {where}",
                        file=str(path),
                        field=f"agent.mcp_servers.{server.name}.tools.{tool}",
                        fix="list a shared tool with the same tier and kind in every agent",
                    )
            tools = {**first.tools, **server.tools}
            merged[server.name] = (first.model_copy(update={"tools": tools}), where)
    return [server for server, _ in merged.values()]
