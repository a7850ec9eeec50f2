"""A content-addressed store for transcripts and large results.

Only hashes and sizes go into Temporal history, so a model activity's input stays the same
size however long the conversation gets. Blobs are named by their sha256, so concurrent
workers and retried activities can write the same content safely. On one machine they are
files under the home; a fleet keeps them where every worker reads them (the shared
database, or S3: `tiergate.activities.content_store`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tiergate.core import TranscriptEntry
from tiergate.state import Database


class ContentStore(ABC):
    """Blobs by their sha256 (hex). Content never changes under a name, so writing the same
    blob twice, from any number of workers, is harmless, and a read may be cached."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data``; its sha256 (the ref every reader finds it by)."""

    @abstractmethod
    def has(self, ref: str) -> bool: ...

    @abstractmethod
    def get(self, ref: str) -> bytes:
        """The blob named ``ref`` (`KeyError` when this store has none)."""

    def put_json(self, value: Any) -> str:
        return self.put(
            json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
        )

    def get_json(self, ref: str) -> Any:
        return json.loads(self.get(ref))


class FileContentStore(ContentStore):
    """Blobs under one directory (``ab/cdef...``): one machine's, the embedded default.
    Writes are atomic renames, so concurrent workers and retried activities can write the
    same content safely."""

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
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            raise KeyError(missing(ref, f"files under {self.root}")) from None


class DatabaseContentStore(ContentStore):
    """Blobs in a table of the shared store (`tiergate.state`): every worker of a fleet
    reads what any other wrote, with nothing but the database shared."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        self.database.transaction(
            lambda tx: tx.execute(
                "INSERT INTO content VALUES (?, ?, ?) ON CONFLICT (ref) DO NOTHING",
                (ref, len(data), data),
            )
        )
        return ref

    def has(self, ref: str) -> bool:
        row = self.database.transaction(
            lambda tx: tx.one("SELECT 1 FROM content WHERE ref = ?", (ref,))
        )
        return row is not None

    def get(self, ref: str) -> bytes:
        row = self.database.transaction(
            lambda tx: tx.one("SELECT data FROM content WHERE ref = ?", (ref,))
        )
        if row is None:
            raise KeyError(missing(ref, self.database.shown))
        return bytes(row[0])


def missing(ref: str, where: str) -> str:
    """Why a blob is not found: most often, workers that do not share one content store."""
    return (
        f"content {ref} is not in {where}: every worker of a fleet must use one content "
        "store (TIERGATE_CONTENT_URL=database, s3://BUCKET, or a mount they share)"
    )


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
        """The new head. When this worker knows the conversation up to ``head``, it also
        knows it up to the new one: the next step's read on this worker fetches nothing."""
        known = () if head is None else self._cached(head)
        for entry in entries:
            head = self.store.put_json({"prev": head, "entry": entry.model_dump(exclude_none=True)})
        if known is not None and head is not None and all(e.ref is None for e in entries):
            self._remember(head, (*known, *entries))
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
