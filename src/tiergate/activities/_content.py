"""A content-addressed store for transcripts and large results.

Only hashes and sizes go into Temporal history, so a model activity's input stays the same
size however long the conversation gets. Writes are atomic renames of files named by their
sha256, so concurrent workers and retried activities can write the same content safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tiergate.shared import TranscriptEntry


class ContentStore:
    """Blobs by sha256 under one directory (``ab/cdef...``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, ref: str) -> Path:
        return self.root / ref[:2] / ref[2:]

    def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        path = self._path(ref)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        return ref

    def has(self, ref: str) -> bool:
        return self._path(ref).exists()

    def get(self, ref: str) -> bytes:
        return self._path(ref).read_bytes()

    def put_json(self, value: Any) -> str:
        return self.put(
            json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
        )

    def get_json(self, ref: str) -> Any:
        return json.loads(self.get(ref))


class Transcript:
    """A conversation as a hash chain: each node holds one entry and its predecessor's hash.

    The head hash names the whole conversation; appending the same entries to the same head
    gives the same hash, so a retried model activity does not fork the transcript.
    """

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    def append(self, head: str | None, entries: list[TranscriptEntry]) -> str | None:
        for entry in entries:
            head = self.store.put_json({"prev": head, "entry": entry.model_dump(exclude_none=True)})
        return head

    def read(self, head: str | None) -> list[TranscriptEntry]:
        """All entries, oldest first, with `ref` entries resolved into `content`."""
        entries: list[TranscriptEntry] = []
        while head is not None:
            node = self.store.get_json(head)
            entry = TranscriptEntry.model_validate(node["entry"])
            if entry.ref is not None and entry.content is None:
                entry = entry.model_copy(update={"content": self.store.get(entry.ref).decode()})
            entries.append(entry)
            head = node["prev"]
        entries.reverse()
        return entries
