"""Reaching Temporal: connecting, payload encryption, the embedded dev server, search attributes."""

from tiergate.cluster._attributes import (
    ensure_search_attributes,
)
from tiergate.cluster._codec import (
    ENCODING,
    KEY_ID,
    AesGcmCodec,
    codec_for,
    data_converter,
)
from tiergate.cluster._connect import (
    connect,
)
from tiergate.cluster._devserver import (
    DYNAMIC_CONFIG,
    DevServer,
    dynamic_config_args,
    free_port,
    start_dev_server,
    temporal_cli,
)

__all__ = [
    "DYNAMIC_CONFIG",
    "ENCODING",
    "KEY_ID",
    "AesGcmCodec",
    "DevServer",
    "codec_for",
    "connect",
    "data_converter",
    "dynamic_config_args",
    "ensure_search_attributes",
    "free_port",
    "start_dev_server",
    "temporal_cli",
]
