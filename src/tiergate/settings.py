"""Settings from the environment (`TIERGATE_*`) and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from tiergate.redaction import RedactionConfig
from tiergate.shared import TASK_QUEUE


class Settings(BaseSettings):
    """Where Temporal is and where tiergate keeps its local state.

    Attributes:
        temporal_address: host:port of the Temporal frontend.
        namespace: Temporal namespace.
        task_queue: Task queue the worker polls and runs are started on.
        home: Folder for local state: dev server database, content store, demo store.
        agents_dir: Extra folder of agent configs (tiergate's own agents are always known).
        store_path: SQLite file of the support domain's tool backends.
        notify_url: Webhook that receives a JSON notice when an approval passes its SLA.
        telemetry: Off (``TIERGATE_TELEMETRY=false``) installs no tracer, meter or log setup.
        spans_file / metrics_file: Where spans and metrics go when no ``OTEL_*`` exporter
            is configured (JSON lines; default under ``home``).
        log_format: ``auto`` (console on a TTY, else JSON), ``json`` or ``console``.
        log_file: Write logs here instead of stderr.
        log_level: Threshold of the root logger.
        redaction: Extra patterns and field rules of the redaction layer, as JSON.
    """

    model_config = SettingsConfigDict(env_prefix="TIERGATE_", env_file=".env", extra="ignore")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    home: Path = Path(".tiergate")
    agents_dir: Path | None = None
    store_path: Path | None = None
    notify_url: str | None = None
    telemetry: bool = True
    spans_file: Path | None = None
    metrics_file: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_file: Path | None = None
    log_level: str = "info"
    redaction: RedactionConfig = RedactionConfig()

    @property
    def reviews_path(self) -> Path:
        return self.home / "reviews.sqlite"

    @property
    def support_store(self) -> Path:
        return self.store_path or self.home / "support.sqlite"

    @property
    def content_dir(self) -> Path:
        return self.home / "content"
