"""The agent bundles a worker has compiled: what its tool runner trusts a call's agent by.

A tool call names the agent config (by content hash) and the policy version the run was
pinned to. The runner does not take that bundle from the run: it looks it up here, among
bundles this worker compiled from its own config and policy files. A version the worker
has not seen is looked for once more on disk (a config added since the last look); one
that is not there is not trusted.

Looking on disk is serialized, and a miss is answered by any look that began after it, so
a burst of calls after a worker restart costs one look, and calls naming made-up versions
cost at most one look at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from tiergate.config._load import PACKAGED_AGENTS, compile_agent, load_agent, load_agent_file
from tiergate.core import AgentBundle, ModelSpec, ToolSpec
from tiergate.errors import TiergateError


class AgentCatalog:
    """Bundles by (config hash, policy version), as compiled by this worker."""

    def __init__(self, agents_dir: Path | None, tools: Mapping[str, ToolSpec]) -> None:
        self.agents_dir = agents_dir
        self.tools = tools
        self._known: dict[tuple[str, str], AgentBundle] = {}
        self._lock = threading.Lock()
        self._scanning = threading.Lock()
        self._scan_began = float("-inf")

    def load(self, agent: str, version: str | None = None) -> AgentBundle:
        """Compile agent ``agent`` (at ``version``) from the files now, and remember it."""
        bundle = load_agent(agent, self.agents_dir, self.tools, version)
        self._remember(bundle)
        return bundle

    def trusted(self, agent: str, config_hash: str, policy_version: str) -> AgentBundle | None:
        """The bundle of ``agent`` with this config hash and policy version, or None."""
        key = (config_hash, policy_version)
        with self._lock:
            known = self._known.get(key)
        if known is None:
            self._scan_after(time.monotonic())
            with self._lock:
                known = self._known.get(key)
        return known if known is not None and known.config.name == agent else None

    def declared_models(self, agent: str) -> list[ModelSpec]:
        """Every model the configs of ``agent`` this worker compiled declare."""
        models = self._models_of(agent)
        if not models:
            self._scan_after(time.monotonic())
            models = self._models_of(agent)
        return models

    def _models_of(self, agent: str) -> list[ModelSpec]:
        with self._lock:
            bundles = [b for b in self._known.values() if b.config.name == agent]
        return [spec for b in bundles for spec in b.config.models.values()]

    def _scan_after(self, missed_at: float) -> None:
        with self._scanning:
            if self._scan_began >= missed_at:
                return  # a look that began after the miss has just ended
            self._scan_began = time.monotonic()
            self._scan()

    def _scan(self) -> None:
        for folder in [d for d in (PACKAGED_AGENTS, self.agents_dir) if d is not None]:
            for path in sorted(folder.glob("*.y*ml")):
                try:
                    self._remember(compile_agent(load_agent_file(path), path, self.tools))
                except TiergateError:
                    continue  # a file broken since start-up trusts nothing; others still count

    def _remember(self, bundle: AgentBundle) -> None:
        with self._lock:
            self._known[(bundle.config_hash, bundle.policy.version)] = bundle
