"""Histories as files and from the server, checked before anything reads them.

Exported histories use Temporal's own JSON (what `temporal workflow show --output json` and
`WorkflowHistory.to_json` write), so responders can move them between tools. Whatever the
source, a history is checked to be a whole tiergate run before a timeline, a replay or a
shadow re-run reads it, so bad input ends in one clear message instead of a stack trace.
"""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from tiergate.core import WORKFLOW_NAME
from tiergate.errors import HistoryError
from tiergate.forensics._reader import decrypted


def check_history(history: WorkflowHistory, source: str) -> WorkflowHistory:
    """``history`` if it is a tiergate run's history; HistoryError otherwise."""
    if not history.events:
        raise HistoryError(f"{source}: the history has no events", fix="export it again")
    first = history.events[0]
    if first.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        raise HistoryError(
            f"{source}: the history does not begin with WorkflowExecutionStarted "
            f"(event {first.event_id} is {EventType.Name(first.event_type)}); it is truncated "
            "at the start",
            fix="export the whole history with `tiergate runs export RUN_ID`",
        )
    kind = first.workflow_execution_started_event_attributes.workflow_type.name
    if kind != WORKFLOW_NAME:
        raise HistoryError(
            f"{source}: this is a history of workflow type {kind!r}, not a tiergate run "
            f"({WORKFLOW_NAME})"
        )
    ids = [e.event_id for e in history.events]
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise HistoryError(
            f"{source}: event ids are not consecutive; the file was edited or is incomplete"
        )
    return history


def load_history_file(path: Path, workflow_id: str | None = None) -> WorkflowHistory:
    """Reads an exported history; the workflow id comes from the file unless given."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise HistoryError(f"{source}: cannot read the file: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise HistoryError(
            f"{source}: not valid JSON at line {error.lineno}, column {error.colno} "
            f"({error.msg}); the file is corrupt or truncated",
            fix="export it again with `tiergate runs export RUN_ID -o FILE`",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise HistoryError(
            f"{source}: expected Temporal history JSON (an object with an `events` list)",
            fix="use `tiergate runs export` or `temporal workflow show --output json`",
        )
    try:
        history = WorkflowHistory.from_json(workflow_id or "", data)
    except Exception as error:  # the SDK's JSON parser raises various types on bad shapes
        raise HistoryError(
            f"{source}: not a Temporal history: {error}",
            fix="use `tiergate runs export` or `temporal workflow show --output json`",
        ) from None
    check_history(history, source)
    if not workflow_id:
        started = history.events[0].workflow_execution_started_event_attributes
        workflow_id = started.workflow_id or path.stem
        history = WorkflowHistory(workflow_id, history.events)
    return history


async def fetch_history(
    client: Client, workflow_id: str, run_id: str | None = None
) -> WorkflowHistory:
    """A run's history from the server (its latest segment unless ``run_id``); an unknown id
    is a HistoryError."""
    try:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise HistoryError(
                f"no run with id {workflow_id!r} on this server",
                fix="list runs with `tiergate runs list`",
            ) from None
        raise HistoryError(f"cannot read run {workflow_id!r}: {error.message}") from None
    # Encrypted payloads (TIERGATE_CODEC_KEYS) are decrypted with the client's own codec.
    history = await decrypted(history, client.data_converter.payload_codec)
    return check_history(history, f"run {workflow_id}")


async def fetch_run_chain(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every segment of a run that continued as new, oldest first (one for most runs)."""
    chain = [await fetch_history(client, workflow_id)]
    while previous := _continued_from(chain[0]):
        chain.insert(0, await fetch_history(client, workflow_id, run_id=previous))
    return chain


def _continued_from(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
