"""A dev server the drills can kill -9 and start again on the same port and SQLite file.

`tiergate.devserver` goes through the SDK's ephemeral-server wrapper, which only shuts down
politely; a crash drill needs the process itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tiergate.cluster import dynamic_config_args, ensure_search_attributes, free_port, temporal_cli


class ServerProcess:
    """`temporal server start-dev` with SQLite persistence, as a child process."""

    def __init__(self, database: Path, log: Path) -> None:
        self.database = database
        self.log = log
        self.port, self.http_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    async def start(self) -> Client:
        """Start (or start again) and return a connected client once the server answers."""
        self._spawn()
        client = await self.connect()
        await ensure_search_attributes(client, "default")
        return client

    def _spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    temporal_cli(),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--http-port",
                    str(self.http_port),
                    "--db-filename",
                    str(self.database),
                    "--log-level",
                    "error",
                    *dynamic_config_args(),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def connect(self) -> Client:
        async with asyncio.timeout(60):
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the dev server exited; see {self.log}")
                try:
                    return await Client.connect(
                        self.address, data_converter=pydantic_data_converter
                    )
                except RuntimeError:
                    await asyncio.sleep(0.2)

    def kill(self) -> None:
        """kill -9: no shutdown, whatever was in flight is cut off."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    async def restart(self) -> Client:
        self.kill()
        self.restarts += 1
        return await self.start()
