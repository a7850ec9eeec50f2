"""The transcript chain: what a model call reads back, and how much of the store it touches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiergate.activities import ContentStore
from tiergate.activities._content import Transcript
from tiergate.core import TranscriptEntry


class CountingStore(ContentStore):
    """A real store that counts node reads."""

    reads = 0

    def get_json(self, ref: str) -> Any:
        self.reads += 1
        return super().get_json(ref)


def entry(n: int) -> TranscriptEntry:
    return TranscriptEntry(role="user" if n % 2 else "assistant", content=f"message {n}")


def test_reads_give_the_whole_conversation_in_order_cached_or_not(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    warm, cold = Transcript(store), Transcript(store, cache_heads=0)
    head = None
    for n in range(30):
        head = warm.append(head, [entry(n)])
        assert warm.read(head) == cold.read(head) == [entry(i) for i in range(n + 1)]


def test_a_step_reads_only_what_was_appended_since_the_last_read(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    transcript = Transcript(store)
    head = transcript.append(None, [entry(n) for n in range(100)])
    transcript.read(head)
    assert store.reads == 100
    head = transcript.append(head, [entry(100), entry(101)])
    store.reads = 0
    assert len(transcript.read(head)) == 102
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
