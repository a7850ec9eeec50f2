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
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tiergate.core import TranscriptEntry


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

    Reading walks the chain back to the last head this worker already read (an LRU of
    ``cache_heads`` conversations): a step reads only what was appended since the previous
    one, so a 1,000-step run does not read 1,000 files per model call. Nodes are immutable
    and named by their content, so a cached prefix can never be stale.
    """

    def __init__(self, store: ContentStore, cache_heads: int = 256) -> None:
        self.store = store
        self._cache: OrderedDict[str, tuple[TranscriptEntry, ...]] = OrderedDict()
        self._cache_heads = cache_heads
        self._lock = threading.Lock()

    def append(self, head: str | None, entries: list[TranscriptEntry]) -> str | None:
        for entry in entries:
            head = self.store.put_json({"prev": head, "entry": entry.model_dump(exclude_none=True)})
        return head

    def read(self, head: str | None) -> list[TranscriptEntry]:
        """All entries, oldest first, with `ref` entries resolved into `content`."""
        newer: list[TranscriptEntry] = []
        cursor: str | None = head
        known: tuple[TranscriptEntry, ...] = ()
        while cursor is not None:
            if (cached := self._cached(cursor)) is not None:
                known = cached
                break
            node = self.store.get_json(cursor)
            entry = TranscriptEntry.model_validate(node["entry"])
            if entry.ref is not None and entry.content is None:
                entry = entry.model_copy(update={"content": self.store.get(entry.ref).decode()})
            newer.append(entry)
            cursor = node["prev"]
        newer.reverse()
        entries = (*known, *newer)
        if head is not None:
            self._remember(head, entries)
        return list(entries)

    def _cached(self, head: str) -> tuple[TranscriptEntry, ...] | None:
        with self._lock:
            found = self._cache.get(head)
            if found is not None:
                self._cache.move_to_end(head)
            return found

    def _remember(self, head: str, entries: tuple[TranscriptEntry, ...]) -> None:
        with self._lock:
            self._cache[head] = entries
            self._cache.move_to_end(head)
            while len(self._cache) > self._cache_heads:
                self._cache.popitem(last=False)
