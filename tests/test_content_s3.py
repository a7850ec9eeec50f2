"""Content on an S3-compatible server (moto's `moto_server`, the stand-in for S3): blobs by
their sha256 under a prefix, a missing one named with the likely cause, a bad bucket or
URL refused with the fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.s3 import S3Server
from tiergate.activities import S3ContentStore, Transcript, content_store
from tiergate.core import TranscriptEntry
from tiergate.errors import StateError
from tiergate.settings import Settings


def test_blobs_are_objects_named_by_their_hash(s3: S3Server) -> None:
    bucket = s3.bucket()
    store = S3ContentStore(f"s3://{bucket}/tiergate/content")
    ref = store.put(b"a transcript entry")
    assert ref == hashlib.sha256(b"a transcript entry").hexdigest()
    assert store.put(b"a transcript entry") == ref  # the same bytes, the same object
    assert store.get(ref) == b"a transcript entry"
    assert store.has(ref)
    assert s3.objects(bucket) == {f"tiergate/content/{ref}": len(b"a transcript entry")}
    assert not store.has("0" * 64)
    with pytest.raises(KeyError, match=r"is not in s3://.*/tiergate/content: every worker"):
        store.get("0" * 64)


def test_settings_pick_s3_and_a_transcript_round_trips(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    settings = Settings(home=tmp_path, content_url=SecretStr(f"s3://{bucket}"))
    store = content_store(settings)
    assert isinstance(store, S3ContentStore)
    transcript = Transcript(store)
    entries = [TranscriptEntry(role="user", content=f"message {i}") for i in range(3)]
    head = transcript.append(None, entries)
    # A worker that never saw this conversation reads it back whole.
    assert Transcript(content_store(settings)).read(head) == entries
    assert len(s3.objects(bucket)) == 3  # one object per entry, not one per prefix


def test_a_missing_bucket_or_bucketless_url_is_refused_with_the_fix(s3: S3Server) -> None:
    with pytest.raises(StateError, match="names no bucket"):
        S3ContentStore("s3:///no-bucket")
    store = S3ContentStore("s3://no-such-bucket-here")
    with pytest.raises(StateError, match="put_object refused") as refused:
        store.put(b"x")
    assert "bucket exists" in (refused.value.fix or "")
