"""The model server inside images built by ``mlsteps package``.

It speaks the protocol of ``mlflow models serve`` -- /ping, /health, /version and /invocations
with dataframe_split, dataframe_records, instances, inputs (JSON), CSV, or Parquet when the
model's requirements bring pyarrow -- by calling MLflow's
own request parser and prediction encoder (``mlflow.pyfunc.scoring_server.invocations``), so
existing clients and SageMaker see the same answers. What it drops is the weight around them:
no nginx, no FastAPI routing or middleware, one small ASGI function under uvicorn, and only
``mlflow-skinny`` in the image instead of all of MLflow.

This file is copied into the image on its own (/opt/mlsteps/server.py) and imports nothing from
mlsteps. Commands: ``server.py [serve]`` (SageMaker passes ``serve``), ``server.py healthcheck``
(the image's HEALTHCHECK: exit 0 when /ping answers 200), ``server.py reference`` (print, as the
server would encode it, the model's own prediction of its saved input example, loaded the way
MLflow loads it and passed straight to ``predict``: no HTTP, no request parsing. The smoke test
compares the server's answer to the serving form of the same example with it).

Environment: PORT (8080), MLSTEPS_MODEL_DIR (/opt/ml/model), MLSTEPS_SERVE_WORKERS (1),
MLSTEPS_SERVE_ACCESS_LOG (false), MLSTEPS_SERVE_MAX_BODY_BYTES (104857600: 100 MiB; a larger
request body is answered 413 without being read whole), MLSTEPS_SERVE_BODY_TIMEOUT (30: seconds
a request body may stall before a 408).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from typing import Any

MODEL_DIR = os.environ.get("MLSTEPS_MODEL_DIR", "/opt/ml/model")
PORT = int(os.environ.get("PORT", "8080"))
JSON = b"application/json"
MAX_BODY_VARIABLE = "MLSTEPS_SERVE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 100 * 2**20


def max_body() -> int:
    text = os.environ.get(MAX_BODY_VARIABLE, "").strip() or str(DEFAULT_MAX_BODY)
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise ValueError(
            f"{MAX_BODY_VARIABLE}={text[:40]!r} is not a positive whole number of bytes: give "
            f"one (e.g. 10485760 for 10 MiB), or unset it for the default ({DEFAULT_MAX_BODY})."
        )
    return int(text)


BODY_TIMEOUT_VARIABLE = "MLSTEPS_SERVE_BODY_TIMEOUT"
DEFAULT_BODY_TIMEOUT = 30.0


def body_timeout() -> float:
    """Seconds a request body may go without a byte: uvicorn waits for a stalled body forever,
    so a client that sends part of one (slowloris) would hold its connection for good."""
    text = os.environ.get(BODY_TIMEOUT_VARIABLE, "").strip() or str(DEFAULT_BODY_TIMEOUT)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:  # NaN too
        raise ValueError(
            f"{BODY_TIMEOUT_VARIABLE}={text[:40]!r} is not a number of seconds from 0 to 3600: "
            f"give one (e.g. 30), or unset it for the default ({DEFAULT_BODY_TIMEOUT:g})."
        )
    return value


def _load() -> tuple[Any, Any]:
    from mlflow.pyfunc import load_model

    model = load_model(MODEL_DIR)
    return model, model.metadata.get_input_schema()


def content_types() -> list[str]:
    """What this image reads. MLflow reads Parquet with pyarrow, which the image has only when
    the model's requirements bring it (it is not added to every image), and only a pyarrow
    that does not unpickle what a Parquet file's schema holds (see pickling_pyarrow)."""
    from mlflow.pyfunc import scoring_server as s

    pyarrow = _pyarrow_version()
    parquet = bool(pyarrow) and not pickling_pyarrow(pyarrow)
    return [s.CONTENT_TYPE_JSON, s.CONTENT_TYPE_CSV] + ([s.CONTENT_TYPE_PARQUET] if parquet else [])


def pickling_pyarrow(text: str) -> bool:
    """Whether this pyarrow version unpickles the extension types a Parquet file names
    (CVE-2023-47248: 0.14.0 to 14.0.0): any client could run code in the server with one
    request. A model's requirements may pin such a version."""
    parts = [int(p) if p.isdigit() else 0 for p in text.split("+")[0].split(".")[:3]]
    return (0, 14, 0) <= tuple(parts + [0] * (3 - len(parts))) < (14, 0, 1)


# How much more than the request's own bytes a Parquet body may decode to: what a JSON body of
# the same size becomes as a frame (a cell takes at least two bytes of JSON, eight of a frame).
PARQUET_EXPANSION = 4


def parquet_over(body: bytes, limit: int) -> str:
    """Why a Parquet body is refused before pandas decodes it, or "". A few KB of Parquet can
    say millions of rows of one long dictionary string (or zstd of zeros): decoded, gigabytes.
    Its footer gives the cells and stored bytes; string columns are read still dictionary-
    encoded and their decoded size computed from the lengths, not by decoding them."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(body)).metadata
    except (pa.ArrowException, OSError, ValueError):
        return ""  # not Parquet: mlflow's parser answers it (400)
    bound = limit * PARQUET_EXPANSION
    cells = meta.num_rows * max(meta.num_columns, 1)
    stored = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if cells * 2 > limit or stored > bound:
        return f"{meta.num_rows} rows of {meta.num_columns} columns ({stored} bytes decompressed)"
    schema = pq.read_schema(io.BytesIO(body))
    strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    table = pq.read_table(io.BytesIO(body), read_dictionary=strings)
    decoded = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.binary_length(chunk.dictionary)
                decoded += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
            else:
                decoded += chunk.nbytes
    if decoded > bound:
        return f"{meta.num_rows} rows that decode to {decoded} bytes"
    return ""


def _pyarrow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyarrow")
    except PackageNotFoundError:
        return ""


def _unsupported(content_type: str, supported: list[str]) -> bytes | None:
    """mlflow's 415 lists Parquet whether or not it can be read here: this one says what this
    image reads, and how to have Parquet read."""
    from mlflow.pyfunc import scoring_server as s

    mime = content_type.split(";")[0].strip()
    if mime in supported:
        return None
    message = f"This server reads {', '.join(supported)}; got '{content_type[:100]}'."
    pyarrow = _pyarrow_version()
    if mime == s.CONTENT_TYPE_PARQUET and pyarrow and pickling_pyarrow(pyarrow):
        message = (
            f"This image does not read Parquet: its pyarrow {pyarrow} unpickles what "
            "a Parquet file holds (CVE-2023-47248), so any client could run code here. Send "
            "JSON or CSV, or require pyarrow>=14.0.1 in the model's requirements and package "
            "it again."
        )
    elif mime == s.CONTENT_TYPE_PARQUET:
        message = (
            "This image cannot read Parquet: pyarrow is not installed in it (mlsteps installs "
            "the model's requirements only). Send JSON or CSV, or add pyarrow to the model's "
            "requirements (extra_pip_requirements when logging it) and package it again."
        )
    return message.encode()


def _invoke(
    model: Any, schema: Any, body: bytes, content_type: str, supported: list[str], limit: int
) -> tuple[int, bytes, bytes]:
    """(status, body, media type) exactly as mlflow's scoring server answers the request."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    if (refusal := _unsupported(content_type, supported)) is not None:
        return 415, refusal, b"text/plain"
    if content_type.split(";")[0].strip() == scoring_server.CONTENT_TYPE_PARQUET and (
        why := parquet_over(body, limit)
    ):
        message = (
            f"The Parquet body holds {why}: over {PARQUET_EXPANSION} times this server's limit "
            f"of {limit} bytes ({MAX_BODY_VARIABLE}). Send fewer rows per request."
        )
        return (
            413,
            json.dumps({"error_code": "REQUEST_TOO_LARGE", "message": message}).encode(),
            JSON,
        )
    try:
        answer = scoring_server.invocations(body, content_type, model, schema)
    except MlflowException as exc:
        return exc.get_http_status_code(), exc.serialize_as_json().encode(), JSON
    return answer.status, answer.response.encode(), answer.mimetype.encode()


def create_app() -> Any:
    from mlflow.version import VERSION

    limit, idle = max_body(), body_timeout()
    model, schema = _load()
    supported = content_types()
    version = VERSION.encode()
    too_large = json.dumps(
        {
            "error_code": "REQUEST_TOO_LARGE",
            "message": f"The request body is over {limit} bytes, this server's limit "
            f"({MAX_BODY_VARIABLE}). Send fewer rows per request, or raise the limit.",
        }
    ).encode()
    too_slow = json.dumps(
        {
            "error_code": "REQUEST_TIMEOUT",
            "message": f"No byte of the request body came for {idle:g} seconds "
            f"({BODY_TIMEOUT_VARIABLE}): send the whole body at once.",
        }
    ).encode()

    async def respond(
        send: Any, status: int, body: bytes, media_type: bytes = JSON, close: bool = False
    ) -> None:
        headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
        if close:  # the rest of the request is never read: this connection cannot go on
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def read_body(scope: dict[str, Any], receive: Any) -> bytes | int:
        """The whole body, or the status that refuses it: 413 past the limit (said by
        Content-Length before any of it is read, or counted as it streams: chunked, or a wrong
        length), 408 when it stalls."""
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            return 413
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), idle)
            except asyncio.TimeoutError:
                return 408
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return 413
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path in ("/ping", "/health"):
            await respond(send, 200, b"\n")
        elif path == "/version":
            await respond(send, 200, version)
        elif path != "/invocations":
            await respond(send, 404, b'{"error_code": "NOT_FOUND"}')
        elif method != "POST":
            await respond(send, 405, b'{"error_code": "METHOD_NOT_ALLOWED"}')
        elif isinstance(request := await read_body(scope, receive), int):
            await respond(send, request, too_large if request == 413 else too_slow, close=True)
        else:
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            # A prediction holds the GIL for its length; in a thread, /ping still answers
            # (the HEALTHCHECK) while a long batch runs -- mlflow's server does the same.
            status, body, media_type = await asyncio.to_thread(
                _invoke, model, schema, request, content_type, supported, limit
            )
            await respond(send, status, body, media_type)

    return app


def serve() -> None:
    import uvicorn

    workers = int(os.environ.get("MLSTEPS_SERVE_WORKERS", "1"))
    access_log = os.environ.get("MLSTEPS_SERVE_ACCESS_LOG", "false").lower() == "true"
    limit = max_body()
    print(
        f"mlsteps serve: model {MODEL_DIR} on port {PORT} ({workers} worker(s), request bodies "
        f"up to {limit} bytes)",
        flush=True,
    )
    uvicorn.run(
        # By import string: uvicorn's workers each import the app themselves.
        f"{os.path.splitext(os.path.basename(__file__))[0]}:create_app",
        factory=True,
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        host="0.0.0.0",
        port=PORT,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )


def healthcheck() -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ping", timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError:
        return 1


def reference() -> int:
    from io import StringIO

    from mlflow.models import Model
    from mlflow.pyfunc import scoring_server

    model, _ = _load()
    example = Model.load(MODEL_DIR).load_input_example(MODEL_DIR)
    if example is None:
        print("the model has no input example", file=sys.stderr)
        return 1
    encoded = StringIO()
    scoring_server.predictions_to_json(model.predict(example), encoded)
    # One marked line: whatever else a model library prints cannot be taken for the answer.
    print("MLSTEPS_REFERENCE=" + encoded.getvalue().replace("\n", " "), flush=True)
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "serve":
        try:
            max_body(), body_timeout()
        except ValueError as exc:  # a setting of the image's environment, named in the message
            print(f"mlsteps serve: {exc}", file=sys.stderr)
            return 2
        serve()
        return 0
    if command == "healthcheck":
        return healthcheck()
    if command == "reference":
        return reference()
    print("usage: server.py [serve | healthcheck | reference]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
