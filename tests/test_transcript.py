"""The transcript chain: what a model call reads back, and how much of the store it touches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tiergate.activities import (
    ContentStore,
    DatabaseContentStore,
    FileContentStore,
    content_store,
)
from tiergate.activities._content import Transcript
from tiergate.core import TranscriptEntry
from tiergate.errors import StateError
from tiergate.settings import Settings
from tiergate.state import open_database


class CountingStore(FileContentStore):
    """A real store that counts node reads."""

    reads = 0

    def get_json(self, ref: str) -> Any:
        self.reads += 1
        return super().get_json(ref)


def entry(n: int) -> TranscriptEntry:
    return TranscriptEntry(role="user" if n % 2 else "assistant", content=f"message {n}")


def test_reads_give_the_whole_conversation_in_order_cached_or_not(tmp_path: Path) -> None:
    store = FileContentStore(tmp_path)
    warm, cold = Transcript(store), Transcript(store, cache_heads=0)
    head = None
    for n in range(30):
        head = warm.append(head, [entry(n)])
        assert warm.read(head) == cold.read(head) == [entry(i) for i in range(n + 1)]


def test_a_step_reads_only_what_was_appended_since_the_last_read(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    writer, other = Transcript(store), Transcript(store)
    head = writer.append(None, [entry(n) for n in range(100)])
    # The worker that appended knows the whole conversation: it reads nothing back.
    assert writer.read(head) == [entry(n) for n in range(100)]
    assert store.reads == 0
    # Another worker reads it once, whole.
    other.read(head)
    assert store.reads == 100
    head = writer.append(head, [entry(100), entry(101)])
    store.reads = 0
    assert len(writer.read(head)) == 102
    assert store.reads == 0
    # ... and later only what was appended since it last read.
    assert len(other.read(head)) == 102
    assert store.reads == 2


def test_the_cache_is_bounded_and_a_forgotten_head_is_read_from_the_store(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    transcript = Transcript(store, cache_heads=2)
    heads = [transcript.append(None, [entry(n), entry(n + 1)]) for n in range(0, 8, 2)]
    for head in heads:
        transcript.read(head)
    store.reads = 0
    assert transcript.read(heads[0]) == [entry(0), entry(1)]
    assert store.reads == 2


def test_a_transcript_written_by_one_worker_reads_on_another_through_the_database(
    database_url: str,
) -> None:
    """Two workers with nothing shared but the database: what one appends, the other
    reads whole, large entries included."""
    big = "x" * 300_000
    written_by = Transcript(DatabaseContentStore(open_database(database_url)))
    head = written_by.append(None, [entry(0), TranscriptEntry(role="tool", content=big)])
    read_by = Transcript(DatabaseContentStore(open_database(database_url)), cache_heads=0)
    assert read_by.read(head) == [entry(0), TranscriptEntry(role="tool", content=big)]
    # The same content written again (a retried activity) is the same row.
    again = written_by.append(None, [entry(0), TranscriptEntry(role="tool", content=big)])
    assert again == head
    store = DatabaseContentStore(open_database(database_url))
    assert store.has(head or "")
    with pytest.raises(KeyError):
        store.get("0" * 64)


def test_the_content_url_picks_the_store(tmp_path: Path) -> None:
    def named(url: str | None) -> ContentStore:
        return content_store(Settings(home=tmp_path, content_url=url))

    assert isinstance(named(None), FileContentStore)
    assert isinstance(named("database"), DatabaseContentStore)
    assert isinstance(named(f"sqlite:///{tmp_path / 'blobs.sqlite'}"), DatabaseContentStore)
    elsewhere = named(f"file://{tmp_path / 'elsewhere'}")
    assert isinstance(elsewhere, FileContentStore)
    assert elsewhere.root == tmp_path / "elsewhere"
    with pytest.raises(StateError, match=r"user:\*\*\*@host.*unknown kind of store 'ftp'"):
        named("ftp://user:hunter2@host/x")
