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

Data capture, off unless MLSTEPS_CAPTURE_DIR is set (``mlsteps deploy`` mounts a directory
there): one JSON line per /invocations request in SageMaker's data-capture format, under
``$MLSTEPS_CAPTURE_DIR/<MLSTEPS_VARIANT>/YYYY/MM/DD/HH/<time>-<pid>.jsonl`` (SageMaker's S3
layout). Each line's ``eventMetadata`` holds the request id (the X-Request-ID header the proxy
sets, else a new uuid4), ``inferenceTime`` (when the answer was sent, UTC), and two keys of
mlsteps' own, ``status`` and ``latencyMs`` (from the request's arrival to its answer sent;
readers of SageMaker's format ignore keys they do not know). ``captureData``
(the request's and the answer's bodies) is there for the share MLSTEPS_CAPTURE_SAMPLE (0 to 1,
default 1) of requests, chosen from the request id's hash, so servers given the same ids (the
champion and the candidate) capture the same requests; a body over MLSTEPS_CAPTURE_MAX_BYTES
(65536) is left out and ``eventMetadata.notCaptured`` says why. Headers are never captured.
Lines are buffered and appended at least every second in a thread, and on shutdown; a write
that fails is said once on stderr and never fails a request. MLSTEPS_VARIANT (AllTraffic)
names the variant, as a SageMaker variant name.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

MODEL_DIR = os.environ.get("MLSTEPS_MODEL_DIR", "/opt/ml/model")
PORT = int(os.environ.get("PORT", "8080"))
JSON = b"application/json"
MAX_BODY_VARIABLE = "MLSTEPS_SERVE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 100 * 2**20


def max_body() -> int:
    return _bytes_setting(MAX_BODY_VARIABLE, DEFAULT_MAX_BODY, "10485760 for 10 MiB")


def _bytes_setting(variable: str, default: int, example: str) -> int:
    text = os.environ.get(variable, "").strip() or str(default)
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise ValueError(
            f"{variable}={text[:40]!r} is not a positive whole number of bytes: give "
            f"one (e.g. {example}), or unset it for the default ({default})."
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


# ----- data capture ---------------------------------------------------------------------------
# Here, not in a module of its own, though it takes this file past 400 lines: the image gets
# this one file, which imports nothing beside it.

CAPTURE_DIR_VARIABLE = "MLSTEPS_CAPTURE_DIR"
CAPTURE_SAMPLE_VARIABLE = "MLSTEPS_CAPTURE_SAMPLE"
CAPTURE_MAX_VARIABLE = "MLSTEPS_CAPTURE_MAX_BYTES"
VARIANT_VARIABLE = "MLSTEPS_VARIANT"
DEFAULT_CAPTURE_MAX = 64 * 2**10
DEFAULT_VARIANT = "AllTraffic"
# SageMaker's pattern for a variant name: also a safe directory name (no "/", no "..").
VARIANT_NAME = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")
# nginx's $request_id is 32 hex digits; anything else a client could put there that is not a
# short plain token (a path, a newline, megabytes) is replaced by a new id.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ENCODINGS = {"application/json": "JSON", "text/csv": "CSV"}
FLUSH_SECONDS = 1.0
FLUSH_BYTES = 2**20  # written sooner than the second when this much waits
MAX_PENDING_BYTES = 64 * 2**20  # past this (the disk stalls), lines are dropped, not kept


@dataclass(frozen=True)
class CaptureSettings:
    directory: str
    variant: str
    sample: float
    max_bytes: int


def capture_settings() -> CaptureSettings | None:
    """The capture settings from the environment, None when capture is off; ValueError naming
    the variable for a bad one (the server then stops at start)."""
    directory = os.environ.get(CAPTURE_DIR_VARIABLE, "")
    if not directory:
        return None
    if not (
        os.path.isabs(directory)
        and os.path.isdir(directory)
        and os.access(directory, os.W_OK | os.X_OK)
    ):
        raise ValueError(
            f"{CAPTURE_DIR_VARIABLE}={directory[:200]!r} is not a directory this server "
            f"(uid {os.getuid()}) can write: mount a writable directory at an absolute path "
            "there, or unset it to capture nothing."
        )
    variant = os.environ.get(VARIANT_VARIABLE, "").strip() or DEFAULT_VARIANT
    if not VARIANT_NAME.fullmatch(variant):
        raise ValueError(
            f"{VARIANT_VARIABLE}={variant[:70]!r} is not a variant name: give up to 63 letters, "
            f"digits and inner hyphens (e.g. candidate), or unset it for {DEFAULT_VARIANT}."
        )
    text = os.environ.get(CAPTURE_SAMPLE_VARIABLE, "").strip() or "1"
    try:
        sample = float(text)
    except ValueError:
        sample = float("nan")
    if not 0 <= sample <= 1:  # NaN too
        raise ValueError(
            f"{CAPTURE_SAMPLE_VARIABLE}={text[:40]!r} is not a share from 0 to 1: give one "
            "(e.g. 0.1 to capture the bodies of one request in ten), or unset it for 1."
        )
    limit = _bytes_setting(CAPTURE_MAX_VARIABLE, DEFAULT_CAPTURE_MAX, "1048576 for 1 MiB")
    return CaptureSettings(directory, variant, sample, limit)


def sampled(request_id: str, share: float) -> bool:
    """Whether this request's bodies are captured: from a hash of its id, not a random draw,
    so servers given the same ids (the champion and the candidate) capture the same requests."""
    if share >= 1:
        return True
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def request_id(headers: dict[bytes, bytes]) -> str:
    given = headers.get(b"x-request-id", b"").decode("latin-1")
    return given if REQUEST_ID.fullmatch(given) else str(uuid.uuid4())


def captured_body(mode: str, media_type: str, body: bytes) -> dict[str, str]:
    """One side of SageMaker's captureData: text for JSON and CSV, base64 for the rest (and
    for JSON or CSV that is not UTF-8)."""
    encoding = ENCODINGS.get(media_type.split(";")[0].strip().lower(), "BASE64")
    try:
        data = body.decode("utf-8") if encoding != "BASE64" else ""
    except UnicodeDecodeError:
        encoding = "BASE64"
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    return {
        "observedContentType": media_type[:200],
        "mode": mode,
        "data": data,
        "encoding": encoding,
    }


def capture_line(
    settings: CaptureSettings,
    event_id: str,
    finished: float,
    status: int,
    seconds: float,
    request: tuple[str, bytes] | None,
    answer: tuple[str, bytes],
) -> str:
    """The JSON line of one request. request is (content type, body), None when the body was
    refused unread (413, 408); answer likewise."""
    seconds_whole, ms = divmod(round(finished * 1000), 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds_whole))
    metadata: dict[str, Any] = {
        "eventId": event_id,
        "inferenceTime": f"{stamp}.{ms:03d}Z",
        "status": status,
        "latencyMs": round(seconds * 1000, 3),
    }
    data: dict[str, Any] = {}
    if sampled(event_id, settings.sample):
        left_out = {}
        for key, mode, part in (
            ("endpointInput", "INPUT", request),
            ("endpointOutput", "OUTPUT", answer),
        ):
            if part is None:
                left_out[key] = "the body was not read"
            elif len(part[1]) > settings.max_bytes:
                left_out[key] = (
                    f"{len(part[1])} bytes, over {CAPTURE_MAX_VARIABLE} ({settings.max_bytes})"
                )
            else:
                data[key] = captured_body(mode, *part)
        if left_out:
            metadata["notCaptured"] = left_out
    line = {"eventMetadata": metadata, "eventVersion": "0"}
    if data:
        line = {"captureData": data, **line}
    return json.dumps(line, separators=(",", ":")) + "\n"


class CaptureWriter:
    """Lines kept in memory and appended to this process's file of the hour by a thread, at
    least every FLUSH_SECONDS and at shutdown (close): the event loop only formats a line.
    Each worker process writes files of its own (its pid is in the name)."""

    def __init__(self, settings: CaptureSettings) -> None:
        self.settings = settings
        self.pending: list[tuple[float, str]] = []
        self.size = 0
        self.file: tuple[str, str] = ("", "")  # (hour, path) being appended to
        self.lock = threading.Lock()  # a shutdown flush may meet a flush still writing
        self.said: set[str] = set()  # each trouble is said once
        self.task: asyncio.Task[None] | None = None
        self.wake: asyncio.Event | None = None

    def add(self, finished: float, line: str) -> None:
        if self.size + len(line) > MAX_PENDING_BYTES:
            self.say("dropped", "capture lines are dropped: the disk does not keep up")
            return
        self.pending.append((finished, line))
        self.size += len(line)
        if self.task is None:
            self.wake = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._flush_often())
        if self.size >= FLUSH_BYTES and self.wake is not None:
            self.wake.set()

    async def _flush_often(self) -> None:
        assert self.wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), FLUSH_SECONDS)
            self.wake.clear()
            await self.flush()

    async def flush(self) -> None:
        lines, self.pending, self.size = self.pending, [], 0
        if lines:
            await asyncio.to_thread(self.write, lines)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.flush()

    def path(self, finished: float) -> str:
        hour = time.strftime("%Y/%m/%d/%H", time.gmtime(finished))
        if self.file[0] != hour:
            name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(finished)) + f"-{os.getpid()}"
            where = os.path.join(self.settings.directory, self.settings.variant, hour)
            self.file = (hour, os.path.join(where, name + ".jsonl"))
        return self.file[1]

    def write(self, lines: list[tuple[float, str]]) -> None:
        groups: dict[str, list[str]] = {}
        for finished, line in lines:
            groups.setdefault(self.path(finished), []).append(line)
        with self.lock:
            try:
                for path, group in groups.items():
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "a", encoding="utf-8") as out:
                        out.write("".join(group))
            except OSError as exc:
                self.say("write", f"capture lines are lost, it cannot write: {exc}")

    def say(self, trouble: str, text: str) -> None:
        if trouble not in self.said:
            self.said.add(trouble)
            print(f"mlsteps serve: {text} (requests are served all the same)", file=sys.stderr)


def create_app() -> Any:
    from mlflow.version import VERSION

    limit, idle, capture = max_body(), body_timeout(), capture_settings()
    writer = CaptureWriter(capture) if capture else None
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
                if kind == "shutdown" and writer:
                    await writer.close()
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
        else:
            await invocations(scope, receive, send)

    async def invocations(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        request = await read_body(scope, receive)
        status, body, media_type = 500, b'{"error_code": "INTERNAL_ERROR"}', JSON
        try:
            if isinstance(request, int):
                status, body = request, too_large if request == 413 else too_slow
                await respond(send, status, body, close=True)
                return
            try:
                # A prediction holds the GIL for its length; in a thread, /ping still answers
                # (the HEALTHCHECK) while a long batch runs -- mlflow's server does the same.
                status, body, media_type = await asyncio.to_thread(
                    _invoke, model, schema, request, content_type, supported, limit
                )
            except Exception:  # mlflow's parser failed unexpectedly: answered, and captured
                traceback.print_exc()
            await respond(send, status, body, media_type)
        finally:
            if writer:  # every request gets its line, whatever the answer
                finished = time.time()
                given = None if isinstance(request, int) else (content_type, request)
                answer = (media_type.decode("latin-1"), body)
                line = capture_line(
                    writer.settings, request_id(headers), finished, status,
                    time.perf_counter() - started, given, answer,
                )  # fmt: skip
                writer.add(finished, line)

    return app


def serve() -> None:
    import uvicorn

    workers = int(os.environ.get("MLSTEPS_SERVE_WORKERS", "1"))
    access_log = os.environ.get("MLSTEPS_SERVE_ACCESS_LOG", "false").lower() == "true"
    limit, capture = max_body(), capture_settings()
    print(
        f"mlsteps serve: model {MODEL_DIR} on port {PORT} ({workers} worker(s), request bodies "
        f"up to {limit} bytes)",
        flush=True,
    )
    if capture:
        print(
            f"mlsteps serve: data capture into {capture.directory}/{capture.variant}/, bodies "
            f"of {capture.sample:g} of requests up to {capture.max_bytes} bytes",
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
            max_body(), body_timeout(), capture_settings()
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
