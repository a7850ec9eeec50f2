"""A real local HTTP server for provider tests: it answers what each test scripts, in the
chat-completions protocol (`completion`, `tool_call`) or in Anthropic's Messages protocol
(`tests/fake_anthropic.py`).

Each request takes the next scripted reply (status, JSON body or raw text, headers, delay);
every request body is kept so tests can check what the provider sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    raw: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(
    message: dict[str, Any], model: str = "gpt-test-2026-01-01", prompt: int = 100, out: int = 20
) -> Reply:
    return Reply(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": out,
                "total_tokens": prompt + out,
            },
        }
    )


def tool_call(name: str, arguments: dict[str, Any] | str) -> Reply:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return completion(
        {
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}
            ],
        }
    )


@dataclass
class FakeOpenAI:
    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@contextmanager
def serve(replies: list[Reply]) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(replies)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            fake.requests.append(
                {
                    "path": self.path,
                    "body": json.loads(self.rfile.read(length)),
                    "auth": self.headers.get("authorization"),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "at": time.monotonic(),
                }
            )
            reply = fake.next_reply()
            time.sleep(reply.delay)
            data = (reply.raw if reply.raw is not None else json.dumps(reply.body)).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
