"""Settings, `tiergate config show`, connecting with retries, and payloads encrypted at rest."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from tests.conftest import Harness
from tests.test_cli import tiergate
from tiergate.cluster import AesGcmCodec, connect, data_converter, free_port
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.errors import ConfigError
from tiergate.report import collect, compute
from tiergate.settings import Settings
from tiergate.web import WebContext, WebServer, build_app
from tiergate.worker import build_worker


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_config_show_masks_secrets_and_reads_a_yaml_file(tmp_path: Path) -> None:
    config = tmp_path / "tiergate.yaml"
    config.write_text("namespace: payments\ntask_queue: agents\n")
    env = {
        "TIERGATE_CONFIG": str(config),
        "TIERGATE_TEMPORAL_API_KEY": "very-secret-api-key",
        "TIERGATE_CODEC_KEYS": json.dumps({"k1": key()}),
        "TIERGATE_CODEC_KEY_ID": "k1",
        "TIERGATE_TASK_QUEUE": "from-env",
    }
    code, out = await tiergate("config", "show", "--json", env=env)
    assert code == 0, out
    shown = json.loads(out)
    assert shown["namespace"] == "payments"  # from the file
    assert shown["task_queue"] == "from-env"  # the environment wins over the file
    assert shown["temporal_api_key"] == "********"
    assert shown["codec_keys"] == {"k1": "********"}
    assert "very-secret" not in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TIERGATE_TEMPORAL_TLS_CERT": "/c.pem"}, "TIERGATE_TEMPORAL_TLS_KEY go together"),
        (
            {"TIERGATE_CODEC_KEYS": '{"k1": "short"}', "TIERGATE_CODEC_KEY_ID": "k1"},
            "is not base64 of 32 bytes",
        ),
        ({"TIERGATE_CONNECT_ATTEMPTS": "many"}, "TIERGATE_CONNECT_ATTEMPTS"),
    ],
)
async def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    code, out = await tiergate("config", "show", env=env)
    assert code == 2
    assert message in out


async def test_connect_retries_then_says_where_it_tried() -> None:
    port = free_port()
    settings = Settings(temporal_address=f"127.0.0.1:{port}", namespace="ops")
    with pytest.raises(
        ConfigError,
        match=rf"cannot reach Temporal at 127.0.0.1:{port} \(namespace ops\) after 2 attempts",
    ):
        await connect(settings, attempts=2)


async def test_codec_round_trip_rotation_and_tampering() -> None:
    old, new = os.urandom(32), os.urandom(32)
    first = AesGcmCodec({"k1": old}, "k1")
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'{"ticket": "T-1001"}')
    (sealed,) = await first.encode([payload])
    assert b"T-1001" not in sealed.SerializeToString()
    assert sealed.metadata["encryption-key-id"] == b"k1"
    rotated = AesGcmCodec({"k1": old, "k2": new}, "k2")
    assert await rotated.decode([sealed]) == [payload]
    (resealed,) = await rotated.encode([payload])
    assert resealed.metadata["encryption-key-id"] == b"k2"
    with pytest.raises(ConfigError, match="encrypted with key 'k2', which is not configured"):
        await first.decode([resealed])
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await first.decode([tampered])


async def test_encrypted_history_holds_no_plaintext_and_still_reads(
    harness: Harness, tmp_path: Path
) -> None:
    keys = {"k1": key()}
    settings = harness.settings.model_copy(
        update={
            "codec_keys": Settings(codec_keys=keys, codec_key_id="k1").codec_keys,
            "codec_key_id": "k1",
            "codec_token": Settings(codec_token="operator-token").codec_token,
        }
    )
    address = harness.env.client.service_client.config.target_host
    client = await Client.connect(address, data_converter=data_converter(settings))
    workflow_id = f"sealed-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue):
        summary: RunSummary = await client.execute_workflow(
            WORKFLOW_NAME,
            RunInput(agent="support_refund_agent", input={"ticket_id": "T-1001"}).model_dump(),
            id=workflow_id,
            task_queue=harness.task_queue,
            result_type=RunSummary,
        )
    assert summary.outcome.value == "completed"
    raw = (await harness.env.client.get_workflow_handle(workflow_id).fetch_history()).to_json()
    # A reader without the keys (the report, rollout figures) counts the run apart.
    (facts,) = await collect(
        harness.env.client, since=datetime.now(UTC) - timedelta(hours=1), ids=[workflow_id]
    )
    assert facts.unreadable is not None
    assert facts.summary is None
    figures = compute([facts], datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert (figures.runs, figures.unreadable, figures.finished) == (1, 1, 0)
    for plaintext in (
        "read the ticket first",
        "You resolve customer-support tickets",
        "ORD-5001",
        "refund_cap",
    ):
        assert plaintext not in raw
    env = {
        "TIERGATE_TEMPORAL_ADDRESS": address,
        "TIERGATE_HOME": str(harness.home),
        "TIERGATE_CODEC_KEYS": json.dumps(keys),
        "TIERGATE_CODEC_KEY_ID": "k1",
    }
    code, out = await tiergate("runs", "show", workflow_id, "--json", env=env)
    assert code == 0, out
    shown = json.loads(out)
    assert shown["outcome"] == "completed"
    assert shown["steps"][0]["reason"] == "read the ticket first"

    # The codec endpoint decrypts for an operator holding the token (the Web UI's codec server).
    history = await harness.env.client.get_workflow_handle(workflow_id).fetch_history()
    sealed = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    body = {"payloads": [json_format.MessageToDict(sealed)]}
    context = WebContext(harness.env.client, settings, ui_url="http://ui.example")
    async with WebServer(build_app(context), port=free_port()) as web, httpx.AsyncClient() as http:
        refused = await http.post(f"{web.url}/codec/decode", json=body)
        assert refused.status_code == 401
        decoded = await http.post(
            f"{web.url}/codec/decode",
            json=body,
            headers={"Authorization": "Bearer operator-token"},
        )
        assert decoded.status_code == 200
        plain = json_format.ParseDict(decoded.json()["payloads"][0], Payload())
        assert json.loads(plain.data)["agent"] == "support_refund_agent"
        assert decoded.headers["access-control-allow-origin"] == "http://ui.example"
