"""nginx's access log (the format steps/deploy/proxy.py renders: one JSON line per request,
and one for its mirrored copy) read into observations.Request records from a byte cursor.

The log is nginx's, but what reaches it comes from clients: every line is parsed as untrusted,
and one that is not nginx's (truncated, garbled, too long) is skipped and counted, never fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from steps.deploy.observations import NO_ANSWER, Observations, Request

# A look reads at most this much of the log; the rest waits for the next look.
MAX_READ = 64 * 2**20
# A "line" longer than this with no newline is no line nginx wrote: it is skipped.
MAX_LINE = 64 * 2**10


@dataclass(frozen=True)
class Cursor:
    """Where the previous look stopped: the log's inode (a new file after rotation starts
    again at 0) and a byte offset; ``malformed`` counts the lines skipped so far."""

    inode: int = 0
    offset: int = 0
    malformed: int = 0

    @classmethod
    def of(cls, since: Mapping[str, object]) -> Cursor:
        values = [since.get(k, 0) for k in ("inode", "offset", "malformed")]
        if not all(type(v) is int and v >= 0 for v in values):
            return cls()  # a cursor mlsteps did not write: read from the start
        return cls(*values)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return {"inode": self.inode, "offset": self.offset, "malformed": self.malformed}


# Which variant an upstream address was at a time (ports are reused by later containers).
Variants = Callable[[str, float], "str | None"]


def parse_line(line: bytes, variants: Variants) -> list[Request] | None:
    """One access-log line → one Request per upstream nginx tried (a retried request names
    several, comma-separated; each failed try counts against the variant that failed). A try
    on an address no variant has (gone before this look) is left out. None: not a line nginx
    wrote with our format (truncated, garbled)."""
    try:
        entry = json.loads(line)
        fields = {k: entry[k] for k in ("id", "addr", "ustatus", "utime", "msec")}
        if not all(isinstance(v, str) for v in fields.values()):
            return None
        mirrored = entry["mirror"]
        if not isinstance(mirrored, bool):
            return None
        when = float(fields["msec"])
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= when < 1e11:  # NaN and inf too: no time nginx wrote
        return None
    # An internal redirect separates groups with " : "; ours has none, but read it as a list.
    addrs = _split(fields["addr"])
    statuses = _split(fields["ustatus"])
    times = _split(fields["utime"])
    if not addrs or fields["addr"] == "-" or len(statuses) != len(addrs):
        return [] if fields["addr"] == "-" else None  # "-": no upstream (nginx answered itself)
    requests = []
    for i, addr in enumerate(addrs):
        variant = variants(addr, when)
        if variant is None:
            continue
        last = i == len(addrs) - 1
        # An earlier try was retried: that only happens on a connection error or timeout.
        status = int(statuses[i]) if last and statuses[i].isdigit() else NO_ANSWER
        try:
            latency = max(0.0, float(times[i])) if i < len(times) else 0.0
        except ValueError:
            latency = 0.0  # "-": nginx measured nothing (no connection was made)
        if latency != latency or latency == float("inf"):
            latency = 0.0
        requests.append(Request(when, variant, status, latency, fields["id"][:64], mirrored))
    return requests


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.replace(" : ", ", ").split(",") if p.strip()]


def read_log(
    path: Path, since: Mapping[str, object], variants: Variants
) -> tuple[Observations, dict[str, object]]:
    """The requests logged since the cursor, and the next cursor. A truncated or rotated log
    (a smaller size, another inode) is read from its start; a missing or unreadable one gives
    Observations(source_error=...) and the cursor unchanged."""
    cursor = Cursor.of(since)
    try:
        with path.open("rb") as log:
            stat = os.fstat(log.fileno())
            offset = cursor.offset
            if stat.st_ino != cursor.inode or stat.st_size < offset:
                offset = 0
            log.seek(offset)
            chunk = log.read(MAX_READ)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Observations(source_error=f"nginx's access log {path}: {reason}"), dict(since)
    end = chunk.rfind(b"\n") + 1
    if end == 0 and len(chunk) > MAX_LINE:
        end = len(chunk)  # no newline in a long run of bytes: not nginx's, skip it whole
    malformed = cursor.malformed
    observations = Observations()
    for line in chunk[:end].splitlines():
        if not line.strip():
            continue
        parsed = parse_line(line, variants) if len(line) <= MAX_LINE else None
        if parsed is None:
            malformed += 1
        else:
            observations.requests.extend(parsed)
    return observations, Cursor(stat.st_ino, offset + end, malformed).as_dict()
