"""A local OpenAI-compatible model server for the benchmarks: a real HTTP server speaking
chat completions, playing one task — read each of ``reads`` (function calls), then answer.

It behaves as OpenAI's models do with tools: when the request allows parallel tool calls
(``parallel_tool_calls`` absent or true) the first answer asks for every read at once;
when it forbids them — or the server runs ``serial`` — one read per answer, the next one
each time a result has come back. A task whose first user message holds a number reads that
many records (the distinct reads in turn), so one server plays tasks of any length. A call's
arguments carry ``reason`` only when the tool's schema asks for one. Each answer waits
``latency`` seconds first, as a model would. ``GET /stats`` gives the requests and their
bytes so far (``?reset=1`` starts the count again), so a benchmark can report what each
framework sends.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The task's reads: (function name as the protocol spells it, arguments).
READS: list[tuple[str, dict[str, str]]] = [
    ("crm__read_ticket", {"ticket_id": "T-1001"}),
    ("orders__get_status", {"order_id": "ORD-5001"}),
    ("orders__get_status", {"order_id": "ORD-5002"}),
    ("crm__read_ticket", {"ticket_id": "T-1002"}),
]


@dataclass
class ModelServer:
    """What the server was asked, for the benchmark's report."""

    reads: list[tuple[str, dict[str, str]]]
    latency: float
    serial: bool = False
    base_url: str = ""
    requests: int = 0
    request_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        answered = sum(1 for m in messages if m.get("role") == "tool")
        parallel = not self.serial and body.get("parallel_tool_calls", True) is not False
        left = self._task(messages)[answered:]
        with_reason = {
            str(t.get("function", {}).get("name"))
            for t in body.get("tools") or []
            if "reason" in (t.get("function", {}).get("parameters") or {}).get("properties", {})
        }
        if not left:
            message: dict[str, Any] = {"role": "assistant", "content": "All read: done."}
        else:
            wanted = left if parallel else left[:1]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{answered + n}",
                        "type": "function",
                        "function": {
                            "name": name,
                            "arguments": json.dumps(
                                {**arguments, "reason": "the task asks"}
                                if name in with_reason
                                else arguments
                            ),
                        },
                    }
                    for n, (name, arguments) in enumerate(wanted)
                ],
            }
        prompt = len(json.dumps(messages)) // 4
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": body.get("model", "bench-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": 20,
                "total_tokens": prompt + 20,
            },
        }

    def _task(self, messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
        first = next((m for m in messages if m.get("role") == "user"), {})
        content = first.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        if (count := re.search(r"[0-9]+", text or "")) is None:
            return self.reads
        wanted = int(count.group())
        return [DISTINCT[n % len(DISTINCT)] for n in range(wanted)]


#: The distinct reads a long task cycles through (8 tickets, 6 orders of the demo store).
DISTINCT: list[tuple[str, dict[str, str]]] = [
    ("crm__read_ticket", {"ticket_id": f"T-10{n:02d}"}) for n in range(1, 9)
] + [("orders__get_status", {"order_id": f"ORD-50{n:02d}"}) for n in range(1, 7)]


@contextmanager
def serve(
    reads: list[tuple[str, dict[str, str]]] | None = None,
    latency: float = 0.0,
    serial: bool = False,
) -> Iterator[ModelServer]:
    """The server on 127.0.0.1 (an ephemeral port) while the block runs."""
    server = ModelServer(reads if reads is not None else READS, latency, serial)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections
        # Headers and body leave in one write: written apart, Nagle's algorithm and the
        # client's delayed ACK hold the body back ~40 ms on loopback, a latency no model adds.
        wbufsize = 1 << 16

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            with server._lock:
                server.requests += 1
                server.request_bytes += len(raw)
            if server.latency:
                time.sleep(server.latency)
            data = json.dumps(server.answer(json.loads(raw))).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def do_GET(self) -> None:
            with server._lock:
                data = json.dumps(
                    {"requests": server.requests, "request_bytes": server.request_bytes}
                ).encode()
                if "reset=1" in self.path:
                    server.requests = server.request_bytes = 0
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    server.base_url = f"http://127.0.0.1:{http.server_address[1]}/v1"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()


@contextmanager
def serve_process(latency: float = 0.0, serial: bool = False) -> Iterator[str]:
    """The server in a process of its own (its CPU is not charged to the worker measured);
    yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--latency", str(latency), *(["--serial"] if serial else [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--serial", action="store_true")
    args = parser.parse_args()
    with serve(latency=args.latency, serial=args.serial) as running:
        print(running.base_url, flush=True)
        threading.Event().wait()
