"""One model call over HTTP, with the failure rules every HTTP provider shares.

Each attempt is one POST, no client-side retries, so every retry is Temporal's and counts
against the run's retry budget: unreachable, ``429`` and ``5xx`` (plus any status a provider
names, such as Anthropic's ``529``) raise a retryable ``ProviderTransient`` carrying the
server's ``retry-after``; any other ``4xx`` a non-retryable ``ProviderRefused``; a body that
is not a JSON object comes back as text, for the workflow to judge as the model's answer.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError


def post_json(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    timeout: float,
    transient: Collection[int] = (429,),
) -> dict[str, Any] | str:
    """The response body as JSON, or its text when it is not a JSON object."""
    try:
        response = client.post(url, json=payload, headers=headers, timeout=timeout)
    except httpx.TransportError as error:
        raise ApplicationError(
            f"model provider unreachable: {error!r}", type="ProviderTransient"
        ) from None
    status = response.status_code
    if status in transient or status >= 500:
        raise ApplicationError(
            f"model provider answered HTTP {status}",
            type="ProviderTransient",
            next_retry_delay=retry_after(response),
        )
    if status >= 400:
        raise ApplicationError(
            f"model provider refused the request: HTTP {status}: {response.text[:300]}",
            type="ProviderRefused",
            non_retryable=True,
        )
    try:
        body = response.json()
    except ValueError:
        return response.text
    return body if isinstance(body, dict) else response.text


def retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after", "")
    try:
        return timedelta(seconds=min(float(value), 300))
    except ValueError:
        return None
