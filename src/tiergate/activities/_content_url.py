"""Which content store a worker uses: the one ``TIERGATE_CONTENT_URL`` names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tiergate.activities._content import ContentStore, DatabaseContentStore, FileContentStore
from tiergate.activities._content_s3 import S3ContentStore
from tiergate.errors import StateError
from tiergate.state import masked, open_database

if TYPE_CHECKING:
    from tiergate.settings import Settings


def content_store(settings: Settings) -> ContentStore:
    """The content store ``settings`` name (``TIERGATE_CONTENT_URL``): unset, files under
    the home; ``database``, the shared store (``TIERGATE_DATABASE_URL``); a
    ``sqlite:///`` or ``postgresql://`` URL, that database; ``s3://BUCKET/PREFIX``, objects
    on S3 or an S3-compatible server; ``file:///PATH``, files there."""
    if settings.content_url is None:
        return FileContentStore(settings.content_dir)
    url = settings.content_url.get_secret_value()
    if url == "database":
        return DatabaseContentStore(settings.database())
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileContentStore(Path(url.removeprefix("file://")))
    if scheme in ("sqlite", "postgresql", "postgres"):
        return DatabaseContentStore(open_database(url))
    if scheme == "s3":
        return S3ContentStore(url)
    raise StateError(
        f"TIERGATE_CONTENT_URL={masked(url)!r}: unknown kind of store {scheme!r}",
        fix="use database (the shared store), a postgresql:// or sqlite:/// URL, "
        "s3://BUCKET/PREFIX or file:///PATH",
    )
