"""Payloads encrypted at rest: an AES-GCM `PayloadCodec`, and decoding whole histories.

Prompts, model responses and tool results travel as payloads and sit in Temporal's history.
With `TIERGATE_CODEC_KEYS` set, every payload the client and the worker write is encrypted
with the current key (`TIERGATE_CODEC_KEY_ID`); the key id travels in the payload's metadata,
so rotating to a new key leaves old histories readable as long as their key stays in the
set. Search attributes are not encrypted (Temporal indexes them), so nothing secret goes
there.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from tiergate.errors import ConfigError
from tiergate.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class AesGcmCodec(PayloadCodec):
    """AES-256-GCM per payload, with a random 96-bit nonce and the key id as associated data."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ConfigError(f"codec key {current!r} is not among the keys {sorted(keys)}")
        self.keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        aead = self.keys[self.current]
        out = []
        for payload in payloads:
            nonce = os.urandom(12)
            sealed = aead.encrypt(nonce, payload.SerializeToString(), self.current.encode())
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self.current.encode()},
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            aead = self.keys.get(key_id)
            if aead is None:
                raise ConfigError(
                    f"a payload is encrypted with key {key_id!r}, which is not configured",
                    fix="add the old key to TIERGATE_CODEC_KEYS (keep retired keys for reading)",
                )
            data = aead.decrypt(payload.data[:12], payload.data[12:], key_id.encode())
            out.append(Payload.FromString(data))
        return out


def codec_for(settings: Settings) -> AesGcmCodec | None:
    if not settings.codec_keys or settings.codec_key_id is None:
        return None
    keys = {k: base64.b64decode(v.get_secret_value()) for k, v in settings.codec_keys.items()}
    return AesGcmCodec(keys, settings.codec_key_id)


def data_converter(settings: Settings) -> DataConverter:
    """pydantic JSON, encrypted by the codec when keys are configured."""
    codec = codec_for(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
