"""Metric thresholds: how mlsteps.yaml states them, and how a candidate's numbers meet them.

A value threshold (``min``/``max``) judges the candidate's own number. A change threshold
(``min-delta``/``max-delta``) judges candidate − champion, absolute (``0.01``) or relative to
the champion (``"1%"``). When the numbers come with bootstrap intervals, a change threshold
passes only when the whole interval clears it: a difference inside the sampling noise neither
promotes nor, under a non-inferiority margin such as ``min-delta: -0.01``, rejects a model.

No numpy here: the options parse these on ``--help`` and ``--dry-run``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from steps.checks.verdict import Check

# Metric names that read as "lower is better" when the gate does not know the metric and the
# file does not say (`better: higher|lower` overrides).
_LOWER_IS_BETTER = re.compile(r"(loss|error|rmse|mse|mae|mape|fpr|false_positive)", re.I)
_KEYS = ("min", "max", "min-delta", "max-delta", "better")


@dataclass(frozen=True)
class Delta:
    value: float
    relative: bool  # a fraction of the champion's value ("1%" → 0.01)

    def __str__(self) -> str:
        if self.relative:
            return f"{self.value * 100:+g}%"
        return f"{self.value:+g}"


@dataclass(frozen=True, kw_only=True)
class MetricThreshold:
    min: float | None = None
    max: float | None = None
    min_delta: Delta | None = None
    max_delta: Delta | None = None
    better: str | None = None  # "higher" | "lower"; None: known from the metric or its name

    @property
    def empty(self) -> bool:
        return self.min is None and self.max is None and not self.min_delta and not self.max_delta


def describe_rule(rule: MetricThreshold) -> str:
    """The rule as the plan shows it: "≥ 0.9, Δ ≥ -1%"."""
    parts = [f"{sign} {fmt(v)}" for sign, v in (("≥", rule.min), ("≤", rule.max)) if v is not None]
    parts += [f"Δ {sign} {d}" for sign, d in (("≥", rule.min_delta), ("≤", rule.max_delta)) if d]
    return ", ".join(parts) or "no threshold"


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: {value!r} is not a number")
    return float(value)


def _delta(key: str, value: Any) -> Delta:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return Delta(float(value.strip()[:-1]) / 100, relative=True)
        except ValueError:
            raise ValueError(f"{key}: {value!r} is not a percentage such as '-0.5%'") from None
    return Delta(_number(key, value), relative=False)


def load_value(raw: Any) -> Any:
    """The file gives a mapping; a flag, an environment variable or an action input gives the
    same mapping as YAML text (several flags are merged, see ``_merged``)."""
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        merged: dict[str, Any] = {}
        for item in raw:
            loaded = load_value(item)
            if not isinstance(loaded, dict):
                raise ValueError(f"a mapping, got {item!r}")
            merged = _merged(merged, loaded)
        return merged
    if isinstance(raw, str):
        from steps.core.values import YamlRefused, load_yaml

        try:
            return load_yaml(raw)
        except YamlRefused as exc:
            raise ValueError(f"YAML ({exc.problem})") from None
    return raw


def _merged(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``more`` over ``base``, key by key at every depth: ``--metrics '{accuracy: {min: 0.9}}'
    --metrics '{accuracy: {min-delta: 0}}'`` keeps both rules, as repeated flags read. Anything
    that is not a mapping on both sides (a number, a list) is replaced by the later value."""
    out = dict(base)
    for key, value in more.items():
        old = out.get(key)
        out[key] = (
            _merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return out


def load_mapping(raw: Any, what: str) -> dict[str, Any]:
    value = load_value(raw)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} (a mapping), got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def parse_metric_thresholds(raw: Any) -> dict[str, MetricThreshold]:
    """``{accuracy: {min: 0.9, min-delta: -0.01}, rmse: {max: 3, max-delta: '2%'}}``."""
    found = {}
    for name, rule in load_mapping(raw, "metric: {min, max, min-delta, max-delta, better}").items():
        rule = {} if rule is None else rule
        if not isinstance(rule, dict):
            raise ValueError(f"{name}: a mapping of {', '.join(_KEYS)}, got {rule!r}")
        unknown = sorted(set(map(str, rule)) - set(_KEYS))
        if unknown:
            raise ValueError(f"{name}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
        better = rule.get("better")
        if better not in (None, "higher", "lower"):
            raise ValueError(f"{name}.better: 'higher' or 'lower', got {better!r}")
        found[name] = MetricThreshold(
            min=_number(f"{name}.min", rule["min"]) if rule.get("min") is not None else None,
            max=_number(f"{name}.max", rule["max"]) if rule.get("max") is not None else None,
            min_delta=_delta(f"{name}.min-delta", rule["min-delta"])
            if rule.get("min-delta") is not None
            else None,
            max_delta=_delta(f"{name}.max-delta", rule["max-delta"])
            if rule.get("max-delta") is not None
            else None,
            better=better,
        )
    return found


def higher_is_better(name: str, rule: MetricThreshold | None, known: bool | None) -> bool:
    if rule is not None and rule.better:
        return rule.better == "higher"
    if known is not None:
        return known
    return not _LOWER_IS_BETTER.search(name)


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def fmt_interval(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "—"
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


@dataclass(frozen=True, kw_only=True)
class Measured:
    """A metric's numbers for one comparison (of the whole data set or of one slice)."""

    name: str
    candidate: float
    champion: float | None = None
    candidate_interval: tuple[float, float] | None = None
    delta_interval: tuple[float, float] | None = None
    relative_interval: tuple[float, float] | None = None
    # The resampling error of each end of the delta (relative) interval; None: not known.
    delta_error: tuple[float, float] | None = None
    relative_error: tuple[float, float] | None = None

    @property
    def delta(self) -> float | None:
        return None if self.champion is None else self.candidate - self.champion


def parse_margin(raw: Any) -> Delta:
    """gate's default-margin: how much worse than the champion a metric without a threshold may
    be, absolute (0.01) or relative ('1%'); a finite number, never negative."""
    text = str(raw).strip()
    try:
        relative = text.endswith("%")
        margin = Delta(float(text[:-1] if relative else text) / (100 if relative else 1), relative)
    except ValueError:
        raise ValueError(
            f"{raw!r} is not a number such as 0.01 or a percentage such as '1%'"
        ) from None
    if not (math.isfinite(margin.value) and margin.value >= 0):
        raise ValueError(f"{raw!r}: a margin is a finite number ≥ 0, e.g. 0.01 or '1%'")
    return margin


def judge(
    m: Measured, rule: MetricThreshold | None, higher: bool, *, kind: str = "metric",
    margin: Delta | None = None,
) -> list[Check]:  # fmt: skip
    """The checks of one metric: its value thresholds, its change thresholds, and — with no
    threshold at all but intervals and a champion — the default check: within ``margin`` of the
    champion when one is set, else "not significantly worse".

    A NaN (roc_auc on rows of one class, a change relative to a champion's 0) compares False
    with everything, so it is caught here and fails with words instead of a silent verdict.
    An interval's end within its resampling error of the threshold is ``undecided`` (and
    fails): the caller adds resamples, or reports it too close to call."""
    checks = []
    common: dict[str, Any] = {
        "name": m.name, "candidate": m.candidate, "champion": m.champion, "delta": m.delta,
    }  # fmt: skip
    for bound, limit in (("min", rule.min), ("max", rule.max)) if rule is not None else ():
        if limit is not None:
            checks.append(_value(m, kind, bound, limit, common))
    if m.champion is None:
        return checks
    for bound, delta in (("min", rule and rule.min_delta), ("max", rule and rule.max_delta)):
        if delta:
            checks.append(_change(m, bound, delta, common))
    if (rule is None or rule.empty) and m.delta_interval is not None:
        if margin is None:
            checks.append(_not_worse(m, higher, common))
        else:
            bound, allowed = ("min", -margin.value) if higher else ("max", margin.value)
            check = _change(m, bound, Delta(allowed, margin.relative), common)
            checks.append(dataclasses.replace(
                check, threshold=f"{check.threshold} (default-margin)"
            ))  # fmt: skip
    return checks


_UNDEFINED = "undefined on these rows"


def _close(value: float, limit: float) -> bool:
    # 0.3 - 0.2 is 0.09999999999999998: a number equal to its threshold up to float rounding
    # meets it, whichever side the rounding fell on.
    return math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)


def at_least(value: float, limit: float) -> bool:
    return value >= limit or _close(value, limit)


def at_most(value: float, limit: float) -> bool:
    return value <= limit or _close(value, limit)


def _nan(*values: float | None) -> bool:
    return any(v is not None and math.isnan(v) for v in values)


def _value(m: Measured, kind: str, bound: str, limit: float, common: dict[str, Any]) -> Check:
    if _nan(m.candidate):
        passed, detail = False, _UNDEFINED
    else:
        meets = at_least if bound == "min" else at_most
        passed = meets(m.candidate, limit)
        detail = "infinite (null in report.json)" if math.isinf(m.candidate) else ""
    return Check(
        kind=kind, threshold=f"{'≥' if bound == 'min' else '≤'} {fmt(limit)}", passed=passed,
        interval=m.candidate_interval, detail=detail, **common,
    )  # fmt: skip


def _undefined_change(m: Measured, relative: bool) -> str | None:
    """Why candidate − champion has no number, or None when it has one."""
    if _nan(m.candidate):
        return f"the change is undefined: the candidate's value is {_UNDEFINED}"
    if _nan(m.champion):
        return f"the change is undefined: the champion's value is {_UNDEFINED}"
    if relative and m.champion == 0:
        return "the change is undefined: the champion's value is 0"
    if m.champion is not None and math.isinf(m.candidate) and math.isinf(m.champion):
        return "the change is undefined: both values are infinite"
    return None


def _signed(value: float) -> str:
    return f"{value:+.4g}"


def _not_worse(m: Measured, higher: bool, common: dict[str, Any]) -> Check:
    assert m.delta is not None and m.delta_interval is not None
    low, high = m.delta_interval
    undecided = False
    undefined = _undefined_change(m, relative=False)
    if undefined is None and _nan(low, high):
        undefined = f"the change's interval is {_UNDEFINED} (too few resamples had a value)"
    if undefined is not None:
        passed, detail = False, undefined
    elif _undecided(high if higher else low, 0.0, m.delta_error, 1 if higher else 0):
        passed, undecided = False, True
        detail = (
            f"Δ {_signed(m.delta)}, interval [{_signed(low)}, {_signed(high)}]: too close to "
            f"call: its {'upper' if higher else 'lower'} end lies within the resampling error "
            "of 0"
        )
    else:
        worse = not at_least(high, 0) if higher else not at_most(low, 0)
        numbers = f"Δ {_signed(m.delta)}, interval [{_signed(low)}, {_signed(high)}]"
        passed, detail = not worse, numbers + (
            f": the whole interval is {'below' if higher else 'above'} 0: the candidate is "
            "worse beyond the sampling noise" if worse else
            ": no threshold set; rejected only when worse beyond the sampling noise"
        )  # fmt: skip
    return Check(
        kind="change", threshold="not worse (default)", passed=passed, interval=m.delta_interval,
        detail=detail, undecided=undecided, **common,
    )  # fmt: skip


def _undecided(end: float, threshold: float, errors: tuple[float, float] | None, at: int) -> bool:
    """Whether the interval's end (0: lower, 1: upper) lies within its resampling error of the
    threshold: other resamples could put it on either side."""
    if errors is None or _nan(errors[at]) or errors[at] <= 0:
        return False
    return abs(end - threshold) <= errors[at]


def _change(m: Measured, bound: str, delta: Delta, common: dict[str, Any]) -> Check:
    assert m.champion is not None and m.delta is not None
    if delta.relative:
        point = m.delta / abs(m.champion) if m.champion else math.nan
        interval, errors = m.relative_interval, m.relative_error
    else:
        point, interval, errors = m.delta, m.delta_interval, m.delta_error
    threshold = f"Δ {'≥' if bound == 'min' else '≤'} {delta}"

    def shown(value: float) -> str:
        return f"{value * 100:+.3g}%" if delta.relative else _signed(value)

    undecided = False
    undefined = _undefined_change(m, delta.relative)
    if undefined is None and interval is not None and _nan(*interval):
        undefined = (
            f"Δ = {shown(point)}, its interval is {_UNDEFINED} (too few resamples had a value)"
        )
    if undefined is not None:
        ok, detail = False, undefined
    elif interval is None:  # logged metrics: no interval, the point decides
        ok = at_least(point, delta.value) if bound == "min" else at_most(point, delta.value)
        detail = f"Δ = {shown(point)}"
    elif _undecided(interval[bound == "max"], delta.value, errors, int(bound == "max")):
        ok, undecided = False, True
        detail = (
            f"Δ interval [{shown(interval[0])}, {shown(interval[1])}]: too close to call: its "
            f"{'lower' if bound == 'min' else 'upper'} end lies within the resampling error of "
            "the threshold"
        )
    else:
        low, high = interval
        ok = at_least(low, delta.value) if bound == "min" else at_most(high, delta.value)
        wrong_side = (
            not at_least(high, delta.value) if bound == "min" else not at_most(low, delta.value)
        )
        where = (
            "clears the threshold" if ok
            else "lies wholly on the failing side" if wrong_side
            else "straddles the threshold: the difference is within the sampling noise"
        )  # fmt: skip
        detail = f"Δ interval [{shown(low)}, {shown(high)}] {where}"
    return Check(
        kind="change", threshold=threshold, passed=bool(ok),
        interval=interval if not delta.relative else None, detail=detail, undecided=undecided,
        **common,
    )  # fmt: skip
