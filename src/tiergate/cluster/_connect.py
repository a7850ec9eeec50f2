"""Connecting to Temporal: address, namespace, TLS or API key, and tiergate's data converter.

Every client tiergate makes (worker, CLI, web page, demo) comes from `connect`, so payload
encryption and tracing are the same wherever a payload is written.
"""

from __future__ import annotations

import asyncio
import itertools

import structlog
from temporalio.client import Client
from temporalio.service import TLSConfig

from tiergate.cluster._codec import data_converter
from tiergate.errors import ConfigError
from tiergate.settings import Settings

_log = structlog.get_logger("tiergate.cluster")


def _tls(settings: Settings) -> TLSConfig | bool:
    if not settings.uses_tls:
        return False
    files = (settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key)
    if not any(files) and settings.temporal_tls_server_name is None:
        return True
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(
        server_root_ca_cert=ca,
        domain=settings.temporal_tls_server_name,
        client_cert=cert,
        client_private_key=key,
    )


async def connect(settings: Settings, attempts: int | None = None) -> Client:
    """A client for ``settings`` (TLS, API key, codec); retries with backoff, saying where.

    ``attempts`` 0 retries for ever (the worker); the default is ``settings.connect_attempts``.
    """
    # Imported here: OpenTelemetry is the slowest import of a client, and only a connection
    # (never a command that reads a history file) needs its interceptor.
    from tiergate.observe import plugins as telemetry_plugins

    attempts = settings.connect_attempts if attempts is None else attempts
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    delay = 0.5
    for attempt in itertools.count(1):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.namespace,
                data_converter=data_converter(settings),
                plugins=telemetry_plugins(),
                tls=_tls(settings),
                api_key=api_key,
            )
        except RuntimeError as error:
            where = f"Temporal at {settings.temporal_address} (namespace {settings.namespace})"
            if attempts and attempt >= attempts:
                raise ConfigError(
                    f"cannot reach {where} after {attempt} attempts: {error}",
                    fix="check TIERGATE_TEMPORAL_ADDRESS, TLS and API-key settings "
                    "(`tiergate config show`)",
                ) from None
            _log.warning("temporal_unreachable", where=where, attempt=attempt, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")
