"""Reading the judge's state back (the controller's state file, after a kill -9): every field is
checked, and anything that is not what to_state writes is a ValueError naming it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steps.deploy.judge.disagreement import Betting
from steps.deploy.judge.strata import Arm, Key, Stratum

VERSION = 1
IGNORED = ("records", "latencies", "pairs")


@dataclass
class Parsed:
    judged: dict[Key, Stratum]
    open: dict[Key, Stratum]
    newest: tuple[int, int] | None
    betting: Betting
    ignored: dict[str, int]
    source_error: str


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number, not {value!r:.40}")
    return value


def _strata(rows: object, what: str) -> dict[Key, Stratum]:
    if not isinstance(rows, list):
        raise ValueError(f"{what} must be a list of buckets, not {type(rows).__name__}")
    table: dict[Key, Stratum] = {}
    for row in rows:
        if not isinstance(row, list) or len(row) != 5:
            raise ValueError(f"a bucket in {what} is [step, bucket, generation, champion, "
                             f"candidate], not {row!r:.80}")  # fmt: skip
        step, bucket, generation = (_int(v, f"a bucket's key in {what}") for v in row[:3])
        if step < 0 or generation < 0:
            raise ValueError(f"a bucket's step and generation in {what} must be >= 0: {row[:3]}")
        key = (step, bucket, generation)
        if key in table:
            raise ValueError(f"bucket {list(key)} appears twice in {what}")
        table[key] = Stratum(Arm.from_list(row[3]), Arm.from_list(row[4]))
    return table


def parse(state: Mapping[str, Any], bucket_seconds: float) -> Parsed:
    if not isinstance(state, Mapping):
        raise ValueError(f"the judge's state must be a mapping, not {type(state).__name__}")
    expected = {"version", "bucket_seconds", "newest", "judged", "open", "disagreement",
                "ignored", "source_error"}  # fmt: skip
    if set(state) != expected:
        raise ValueError(
            f"the judge's state has keys {sorted(map(str, state))}, expected {sorted(expected)}"
        )
    if state["version"] != VERSION:
        raise ValueError(f"the judge's state is version {state['version']!r:.20}, not {VERSION}")
    if state["bucket_seconds"] != bucket_seconds:
        raise ValueError(
            f"the judge's state was written with buckets of {state['bucket_seconds']!r:.20} s, "
            f"these settings have {bucket_seconds} s: the buckets would not line up"
        )
    judged = _strata(state["judged"], "judged")
    open_ = _strata(state["open"], "open")
    if set(judged) & set(open_):
        raise ValueError("a bucket is both judged and open in the judge's state")
    newest = state["newest"]
    if newest is not None:
        if not isinstance(newest, list) or len(newest) != 2:
            raise ValueError(f"newest must be [step, bucket] or null, not {newest!r:.40}")
        newest = (_int(newest[0], "newest's step"), _int(newest[1], "newest's bucket"))
    if newest is None and (judged or open_):
        raise ValueError("the judge's state has buckets but no newest bucket")
    ignored = state["ignored"]
    if not isinstance(ignored, Mapping) or set(ignored) != set(IGNORED):
        raise ValueError(f"ignored must count {IGNORED}, not {ignored!r:.80}")
    counts = {name: _int(ignored[name], f"ignored {name}") for name in IGNORED}
    if min(counts.values()) < 0:
        raise ValueError(f"ignored counts must be >= 0: {counts}")
    source_error = state["source_error"]
    if not isinstance(source_error, str):
        raise ValueError(f"source_error must be text, not {type(source_error).__name__}")
    betting = Betting.from_list(state["disagreement"])
    return Parsed(judged, open_, newest, betting, counts, source_error)
