"""Temporal's codec-server protocol, so the Web UI and operators' tools read encrypted payloads.

It takes a bearer token (`TIERGATE_CODEC_TOKEN`), not a session: the Web UI calls it from
another origin, which is the one origin CORS lets in.
"""

from __future__ import annotations

from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.api.common.v1 import Payload

from tiergate.cluster import AesGcmCodec
from tiergate.errors import TiergateError
from tiergate.web._context import WebContext
from tiergate.web._pages import same


def _allowed(request: Request, web: WebContext, codec: AesGcmCodec | None) -> bool:
    token = web.settings.codec_token
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return codec is not None and token is not None and same(sent, token.get_secret_value())


def _cors(response: Response, web: WebContext) -> Response:
    if web.ui_url:
        response.headers["Access-Control-Allow-Origin"] = web.ui_url.rstrip("/")
        response.headers["Access-Control-Allow-Headers"] = "authorization,content-type,x-namespace"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


async def codec_endpoint(request: Request) -> Response:
    web: WebContext = request.app.state.context
    codec: AesGcmCodec | None = request.app.state.codec
    if request.path_params["op"] not in ("encode", "decode"):
        return Response(status_code=404)
    if request.method == "OPTIONS":
        return _cors(Response(status_code=200), web)
    if not _allowed(request, web, codec):
        return _cors(Response("codec endpoint: bearer token required", status_code=401), web)
    assert codec is not None
    body = await request.json()
    payloads = [json_format.ParseDict(p, Payload()) for p in body.get("payloads", [])]
    try:
        if request.path_params["op"] == "encode":
            converted = await codec.encode(payloads)
        else:
            converted = await codec.decode(payloads)
    except TiergateError as error:
        return _cors(Response(str(error), status_code=400), web)
    result = {"payloads": [json_format.MessageToDict(p) for p in converted]}
    return _cors(JSONResponse(result), web)
