"""Data capture, read: the JSON lines the model server writes (steps/serve/server.py, in
SageMaker's data-capture format) turned into records, and the champion's and the candidate's
records of the same requests joined into the Pairs the disagreement metric judges.

The files are written by a container running model code, so they are read as a lower-trust
party's: a line that is not what the server writes (bad JSON, a wrong type, over max_line
bytes) is skipped and counted, never a crash; the tree is walked by directory descriptors
and no symbolic link is followed (a link out of the capture directory, to a FIFO or to a
device is refused); only the server's layout is read (``VARIANT/YYYY/MM/DD/HH/NAME.jsonl``).
A reader keeps an offset per file (``cursor``, JSON-able), so each look reads each line once
and a controller that resumes from its state file goes on where it stopped. Light: standard
library only.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from steps.deploy.observations import Pair

MAX_LINE = 2**20  # bytes: the server's default caps bodies at 64 KiB, base64 adds a third
BUDGET = 64 * 2**20  # bytes read from one file in one look; the rest at the next
MAX_FILES = 100_000  # per look: a container that makes millions of files cannot stall a look
CHUNK = 2**20
# The server's own pattern for a request id (steps/serve/server.py's REQUEST_ID; the server
# imports nothing from mlsteps and deploy nothing from the server, so it is written twice).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
VARIANT = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
LAYOUT = (re.compile(r"\d{4}"), re.compile(r"\d\d"), re.compile(r"\d\d"), re.compile(r"\d\d"))
FILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}\.jsonl")
ENCODINGS = ("JSON", "CSV", "BASE64")


@dataclass(frozen=True)
class Record:
    """One request as a variant's server captured it."""

    request_id: str
    time: float  # inferenceTime, epoch seconds
    variant: str
    status: int | None  # mlsteps' lines say it; SageMaker's own capture does not
    latency: float | None  # seconds, likewise
    input: str | None  # the request body as text; None when not captured (sampled out, too
    output: str | None  # large, unread) or binary


def parse_line(line: bytes | str, variant: str) -> Record | None:
    """The record of one line, or None when it is not a line the server writes."""
    try:
        event = json.loads(line, parse_constant=_refuse)
        meta = event["eventMetadata"]
        event_id, when = meta["eventId"], meta["inferenceTime"]
        status, latency = meta.get("status"), meta.get("latencyMs")
        data = event.get("captureData", {})
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    if not (
        isinstance(event_id, str)
        and REQUEST_ID.fullmatch(event_id)
        and isinstance(when, str)
        and TIME.fullmatch(when)
        and (status is None or (type(status) is int and 0 <= status < 1000))
        and (latency is None or (type(latency) in (int, float) and 0 <= latency < math.inf))
        and isinstance(data, dict)
    ):
        return None
    try:
        moment = datetime.strptime(when.replace("Z", "+0000"), _time_format(when))
        parts = [_text(data.get(key)) for key in ("endpointInput", "endpointOutput")]
    except ValueError:
        return None
    return Record(
        request_id=event_id,
        time=moment.replace(tzinfo=timezone.utc).timestamp(),
        variant=variant,
        status=status,
        latency=None if latency is None else latency / 1000,
        input=parts[0],
        output=parts[1],
    )


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON the server writes")


def _time_format(when: str) -> str:
    return "%Y-%m-%dT%H:%M:%S.%f%z" if "." in when else "%Y-%m-%dT%H:%M:%S%z"


def _text(part: Any) -> str | None:
    """One side of captureData as text; ValueError when it is malformed."""
    if part is None:
        return None
    if not isinstance(part, dict):
        raise ValueError("not an object")
    data, encoding = part.get("data"), part.get("encoding")
    if not isinstance(data, str) or encoding not in ENCODINGS:
        raise ValueError("no data or an unknown encoding")
    if encoding != "BASE64":
        return data
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except binascii.Error as exc:
        raise ValueError("bad base64") from exc
    except UnicodeDecodeError:
        return None  # binary (Parquet): no text to compare


def read_lines(lines: Iterable[bytes | str], variant: str) -> tuple[list[Record], int]:
    """The records of LINES, and how many were skipped as malformed."""
    records, skipped = [], 0
    for line in lines:
        record = parse_line(line, variant) if len(line) <= MAX_LINE else None
        if record is None:
            skipped += 1
        else:
            records.append(record)
    return records, skipped


class CaptureReader:
    """Reads one variant's capture files under ROOT (ROOT/VARIANT/YYYY/MM/DD/HH/*.jsonl) from
    where the previous read stopped. A line is read once it is whole (ends in a newline): one
    the server is still writing waits for the next read."""

    def __init__(
        self,
        root: str | Path,
        variant: str,
        cursor: Mapping[str, Any] | None = None,
        *,
        max_line: int = MAX_LINE,
        budget: int = BUDGET,
    ) -> None:
        if not VARIANT.fullmatch(variant):
            raise ValueError(f"{variant[:70]!r} is not a variant name")
        self.root, self.variant = str(root), variant
        self.max_line, self.budget = max_line, budget
        self.files: dict[str, dict[str, Any]] = _checked_cursor(cursor or {})
        self.skipped = 0  # malformed lines, over the reader's life
        self.refused: list[str] = []  # paths refused (links, not regular files), for a report

    @property
    def cursor(self) -> dict[str, Any]:
        """Where each file was read to: JSON-able, for the controller's state file."""
        return {"files": {name: dict(state) for name, state in sorted(self.files.items())}}

    def read(self) -> list[Record]:
        """The records of the lines written since the previous read, in file order."""
        records: list[Record] = []
        try:
            root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return records  # no capture yet
        try:
            self._walk(root, self.variant, self.variant, 0, records, [0])
        finally:
            os.close(root)
        return records

    def _walk(
        self, parent: int, name: str, relative: str, depth: int, out: list[Record], seen: list[int]
    ) -> None:
        try:  # O_NOFOLLOW: a symbolic link here is refused, not followed out of the tree
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            return
        except OSError:
            self._refuse(relative, "not a directory (a symbolic link?)")
            return
        try:
            for child in sorted(os.listdir(fd)):
                path = f"{relative}/{child}"
                if depth < len(LAYOUT):
                    if LAYOUT[depth].fullmatch(child):
                        self._walk(fd, child, path, depth + 1, out, seen)
                elif FILE_NAME.fullmatch(child) and seen[0] < MAX_FILES:
                    seen[0] += 1
                    out += self._read_file(fd, child, path)
        finally:
            os.close(fd)

    def _refuse(self, relative: str, why: str) -> None:
        text = f"{relative[:300]}: {why}"
        if text not in self.refused:
            self.refused.append(text)

    def _read_file(self, parent: int, name: str, relative: str) -> list[Record]:
        try:  # O_NONBLOCK: a FIFO named like a capture file cannot hang the read
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        except OSError:
            self._refuse(relative, "cannot be opened as a file (a symbolic link?)")
            return []
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                self._refuse(relative, "not a regular file")
                return []
            state = self.files.get(relative, {"offset": 0, "skip": False})
            records, state = self._read_from(fd, state)
            self.files[relative] = state
            return records
        finally:
            os.close(fd)

    def _read_from(self, fd: int, state: dict[str, Any]) -> tuple[list[Record], dict[str, Any]]:
        start, skipping = state["offset"], state["skip"]
        consumed, pending, records = start, b"", []
        os.lseek(fd, start, os.SEEK_SET)
        while consumed - start < self.budget and (chunk := os.read(fd, CHUNK)):
            pending += chunk
            while consumed - start < self.budget and (end := pending.find(b"\n")) >= 0:
                line, pending = pending[:end], pending[end + 1 :]
                consumed += end + 1
                if skipping:  # the end of a line already counted as too long
                    skipping = False
                elif len(line) > self.max_line or not (record := parse_line(line, self.variant)):
                    self.skipped += 1
                else:
                    records.append(record)
            if consumed - start >= self.budget:
                break  # what is left is the next look's
            if len(pending) > self.max_line:  # no end in sight: counted once, passed over
                self.skipped += 0 if skipping else 1
                skipping, consumed, pending = True, consumed + len(pending), b""
        return records, {"offset": consumed, "skip": skipping}


def _checked_cursor(cursor: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    files = cursor.get("files", {})
    if not isinstance(files, dict):
        raise ValueError("a capture cursor's files must be an object")
    checked = {}
    for name, state in files.items():
        if not (
            isinstance(name, str)
            and isinstance(state, dict)
            and type(state.get("offset")) is int
            and state["offset"] >= 0
            and type(state.get("skip")) is bool
        ):
            raise ValueError(f"a capture cursor's entry {str(name)[:100]!r} is malformed")
        checked[name] = {"offset": state["offset"], "skip": state["skip"]}
    return checked


# ----- joining the two variants ---------------------------------------------------------------


def pairs(champion: Iterable[Record], candidate: Iterable[Record], tolerance: float) -> list[Pair]:
    """The Pairs of requests both variants answered (status 200, or not said) with captured
    outputs, joined by request id, in time order. Predictions agree when equal as JSON:
    numbers within TOLERANCE (absolute), strings, labels and null exactly, lists element-wise
    and objects key by key; an answer that is not JSON is compared as text."""
    if not 0 <= tolerance < math.inf:
        raise ValueError(f"the tolerance {tolerance!r} is not a number >= 0")
    first: dict[str, Record] = {}
    for record in champion:
        if _answered(record):
            first.setdefault(record.request_id, record)
    joined, done = [], set()
    for record in candidate:
        other = first.get(record.request_id)
        if other is None or not _answered(record) or record.request_id in done:
            continue
        done.add(record.request_id)
        mine, theirs = _predictions(other.output), _predictions(record.output)
        try:
            agree = _same(mine, theirs, tolerance)
        except RecursionError:  # nested past Python's stack: not comparable, not equal
            agree = False
        joined.append(
            Pair(
                time=max(other.time, record.time),
                request_id=record.request_id,
                agree=agree,
                champion_value=_first_number(mine),
                candidate_value=_first_number(theirs),
            )
        )
    return sorted(joined, key=lambda pair: pair.time)


def _answered(record: Record) -> bool:
    return record.output is not None and record.status in (None, 200)


class _Text(str):
    """An answer that is not JSON, compared as text."""


def _predictions(output: str | None) -> Any:
    try:
        value = json.loads(output or "")
    except (ValueError, RecursionError):
        return _Text(output or "")
    if isinstance(value, dict) and set(value) == {"predictions"}:
        return value["predictions"]  # mlflow's scoring server wraps them so
    return value


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if _number(a) and _number(b):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return bool(abs(a - b) <= tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    return type(a) is type(b) and bool(a == b)


def _number(value: Any) -> bool:
    return type(value) in (int, float)  # not bool, which is a label


def _first_number(value: Any) -> float | None:
    """The first number of a prediction, depth first (for PSI); None if it has none."""
    stack = [value]
    while stack:
        item = stack.pop()
        if _number(item):
            number = float(item)
            return number if math.isfinite(number) else None
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    return None


# How long an answer of one variant waits for the other's to be read (servers flush every
# second; a look may read one variant's file just before the other's line is written).
PENDING_SECONDS = 30.0
# The most output text kept waiting per variant (it goes into the controller's state file at
# every look). A server's capture holds bodies up to 64 KiB; a container writing many answers
# no other variant has (model code can) loses its oldest, never grows the state file.
PENDING_BYTES = 4 * 2**20


def join_pending(
    champion: Iterable[Record],
    candidate: Iterable[Record],
    pending: Mapping[str, Any],
    tolerance: float,
) -> tuple[list[Pair], dict[str, Any]]:
    """pairs() across looks: the answers read now joined with those an earlier look read
    without their other half (``pending``, as the previous call returned it). Answers still
    unmatched are kept for PENDING_SECONDS after the newest answer read, as JSON-able lists."""

    def kept(side: str) -> list[Record]:
        found = []
        for item in pending.get(side, ()) if isinstance(pending, Mapping) else ():
            if (
                isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and isinstance(item[1], (int, float)) and isinstance(item[2], str)
            ):  # fmt: skip
                found.append(Record(item[0], float(item[1]), side, 200, None, None, item[2]))
        return found

    mine = kept("champion") + [r for r in champion if _answered(r)]
    theirs = kept("candidate") + [r for r in candidate if _answered(r)]
    joined = pairs(mine, theirs, tolerance)
    matched = {pair.request_id for pair in joined}
    newest = max((r.time for r in (*mine, *theirs)), default=0.0)
    left = {
        side: _newest(
            [
                r
                for r in records
                if r.request_id not in matched and r.time >= newest - PENDING_SECONDS
            ]
        )
        for side, records in (("champion", mine), ("candidate", theirs))
    }
    return joined, left


def _newest(records: list[Record]) -> list[list[Any]]:
    """The newest of ``records`` whose outputs fit in PENDING_BYTES, as JSON-able lists."""
    kept, size = [], 0
    for record in sorted(records, key=lambda r: r.time, reverse=True):
        size += len(record.output or "") + len(record.request_id)
        if size > PENDING_BYTES:
            break
        kept.append([record.request_id, record.time, record.output])
    return kept[::-1]
