"""Settings from the environment (`TIERGATE_*`), a `.env` file and an optional YAML file.

Precedence: environment, then `.env`, then the YAML file named by ``TIERGATE_CONFIG``, then
defaults. `tiergate config show` prints the effective values with secrets masked.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from tiergate.core import TASK_QUEUE
from tiergate.sensitive import RedactionConfig
from tiergate.state import Database, import_home, open_database

#: Homes whose legacy files this process has looked for (once is enough).
_IMPORTED: set[tuple[str, Path]] = set()


class Settings(BaseSettings):
    """Where Temporal is and where tiergate keeps its local state.

    Attributes:
        temporal_address: host:port of the Temporal frontend.
        namespace: Temporal namespace.
        task_queue: Task queue the worker polls and runs are started on.
        home: Folder for local state: dev server database, content store, demo store.
        database_url: The shared store of what tiergate keeps beside Temporal (kill switch,
            rollouts, cap counters): ``postgresql://USER:PASSWORD@HOST:PORT/DB`` for a fleet
            of workers on many hosts, ``sqlite:///PATH`` for one machine. Unset: SQLite in
            ``home`` (``tiergate.sqlite``), the embedded default. A secret (it may hold a
            password).
        content_url: Where transcripts and large results go: unset, files under ``home``
            (one machine); ``database``, the shared store; or a ``postgresql://`` /
            ``sqlite:///`` URL of a database of their own, or ``file:///PATH``.
        agents_dir: Extra folder of agent configs (tiergate's own agents are always known).
        store_path: SQLite file of the support demo's tool backends (default under home).
        store_url: The support demo's backend as a database URL instead: a
            ``postgresql://`` database the workers of a fleet share (so a refund one worker
            applied is known to all, and caps count every worker's calls), or
            ``sqlite:///PATH``. A secret. Never tiergate's own store: the demo stands for
            a team's backend, which keeps its own database.
        notify_url: Webhook that receives a JSON notice when an approval passes its SLA.
        telemetry: Off (``TIERGATE_TELEMETRY=false``) installs no tracer, meter or log setup.
        spans_file / metrics_file: Where spans and metrics go when no ``OTEL_*`` exporter
            is configured (JSON lines; default under ``home``).
        log_format: ``auto`` (console on a TTY, else JSON), ``json`` or ``console``.
        log_file: Write logs here instead of stderr.
        log_level: Threshold of the root logger.
        redaction: Extra patterns and field rules of the redaction layer, as JSON.
        temporal_tls: Connect with TLS (implied by a client certificate or an API key).
        temporal_tls_cert / temporal_tls_key: Client certificate and key (mTLS, e.g. Temporal
            Cloud namespaces with certificates).
        temporal_tls_ca: Server root CA, when not a public one.
        temporal_tls_server_name: TLS server name override.
        temporal_api_key: API key (e.g. Temporal Cloud API-key namespaces); a secret.
        codec_keys: Payload encryption keys by id (base64 of 32 bytes each), as JSON; secrets.
        codec_key_id: The key new payloads are encrypted with; older ids still decrypt.
        codec_token: Bearer token the codec endpoint requires (Web UI, operators).
        offline_model_overrides: Let a run's input bring its own offline model (a scripted
            list of proposals) for a tier. Off by default: on a production worker a run can
            only pick among the models its agent declares. `tiergate dev`, the tests and the
            private workers of evals and shadows turn it on.
        registry_admins: Administrator public keys (base64 Ed25519, from `tiergate admin
            keygen`) whose endorsement a registry entry needs before workers and the page
            take it: an approver or operator no listed administrator signed does not exist
            for them. Empty: nobody is trusted (`tiergate dev` and the demo trust their own
            dev administrator).
        toolsets: Import paths (``module:attribute``) of the toolsets the CLI's workers
            serve, with those installed packages offer (entry points ``tiergate.toolsets``);
            with none at all they serve the support demo. JSON list in
            ``TIERGATE_TOOLSETS``; ``--toolset`` adds to it.
        registry_dir: Where the approver and operator registries' files were kept before
            they moved into the shared store (``approvers.json``, ``operators.json`` and
            their change log), when not under ``home``: imported once, like the home's own
            legacy files (`tiergate.state.import_home`). Nothing reads it after.
        web_origin: The approvals page's origin as browsers reach it
            (``https://approvals.example.com``): passkeys are made for its host name and
            verified against it. Unset: taken from each request (fine for dev on
            ``http://localhost``; set it behind a proxy).
        web_secure_cookies: Mark the approvals page's cookies ``Secure`` on every response,
            not only when the request came over TLS (set it behind a TLS proxy whose
            forwarded headers uvicorn is not told to trust).
        connect_attempts: Tries to reach Temporal before a command gives up (the worker
            keeps trying).
        max_cached_workflows: Runs a worker keeps in memory between their workflow tasks.
            A run waiting for approval past this many is evicted and replayed from its
            history when the answer comes, so worker memory stays bounded however many runs
            wait (BENCHMARKS.md, "Waiting at scale").
        max_concurrent_workflow_tasks: Workflow tasks a worker takes from the server at
            once. Kept near what it can finish well inside the 10 s task timeout: a task
            waiting in the worker has its timeout running, one waiting on the server does
            not. With Temporal's default of 100 on 2 cores (about 12 tasks/s), 5,000 runs
            started together timed tasks out inside the worker and then left it idle with
            every slot held and thousands of tasks queued (BENCHMARKS.md, "Waiting at
            scale"); at 20 the same start completes.
    """

    model_config = SettingsConfigDict(env_prefix="TIERGATE_", env_file=".env", extra="ignore")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    home: Path = Path(".tiergate")
    database_url: SecretStr | None = None
    content_url: SecretStr | None = None
    agents_dir: Path | None = None
    store_path: Path | None = None
    store_url: SecretStr | None = None
    notify_url: str | None = None
    telemetry: bool = True
    spans_file: Path | None = None
    metrics_file: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_file: Path | None = None
    log_level: str = "info"
    redaction: RedactionConfig = RedactionConfig()
    toolsets: list[str] = []
    registry_dir: Path | None = None
    web_origin: str | None = None
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None
    codec_keys: dict[str, SecretStr] = {}
    codec_key_id: str | None = None
    codec_token: SecretStr | None = None
    offline_model_overrides: bool = False
    web_secure_cookies: bool = False
    registry_admins: list[str] = []
    connect_attempts: int = 3
    max_cached_workflows: int = Field(default=300, ge=0)
    max_concurrent_workflow_tasks: int = Field(default=20, ge=2)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if config := os.environ.get("TIERGATE_CONFIG"):
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return (*sources, file_secret_settings)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "TIERGATE_TEMPORAL_TLS_CERT and TIERGATE_TEMPORAL_TLS_KEY go together: set both "
                "(mTLS) or neither"
            )
        for key_id, key in self.codec_keys.items():
            try:
                raw = base64.b64decode(key.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(
                    f"TIERGATE_CODEC_KEYS: key {key_id!r} is not base64 of 32 bytes; make one "
                    "with: python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
                )
        if self.codec_keys and self.codec_key_id not in self.codec_keys:
            raise ValueError(
                f"TIERGATE_CODEC_KEY_ID={self.codec_key_id!r} is not one of TIERGATE_CODEC_KEYS "
                f"({sorted(self.codec_keys)}); set it to the id new payloads should use"
            )
        return self

    @property
    def uses_tls(self) -> bool:
        return (
            self.temporal_tls
            or self.temporal_tls_cert is not None
            or self.temporal_api_key is not None
        )

    @property
    def registry_home(self) -> Path:
        """Where the registries' legacy files are imported from: ``registry_dir``, else
        ``home``."""
        return self.registry_dir or self.home

    @property
    def database_target(self) -> str:
        """The URL of the shared store (``database_url``, else SQLite in ``home``)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        path = self.home / "tiergate.sqlite"
        return f"sqlite:///{path}"

    def database(self) -> Database:
        """The shared store, opened once per process and migrated to this version; files
        this home kept before the store existed are moved into it the first time."""
        database = open_database(self.database_target)
        for folder in dict.fromkeys((self.home, self.registry_home)):
            if (self.database_target, folder) not in _IMPORTED:
                import_home(database, folder)  # raises (and is tried again) until it can
                _IMPORTED.add((self.database_target, folder))
        return database

    @property
    def support_store(self) -> str:
        """The support demo's store, as `SupportStore` takes it (a URL)."""
        if self.store_url is not None:
            return self.store_url.get_secret_value()
        return f"sqlite:///{self.store_path or self.home / 'support.sqlite'}"

    @property
    def content_dir(self) -> Path:
        return self.home / "content"
