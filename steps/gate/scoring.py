"""The gate's model judgement: both models scored on the same rows (or their runs' logged
metrics compared), then per-slice checks. Imported only by a real run.

Models are loaded with MLflow's pyfunc (so a model predicts exactly as it would be served), in
a process without the job's credentials (steps/services/model_code/runner.py); class probabilities,
for roc_auc and log_loss, come from the underlying scikit-learn model when it has
``predict_proba``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from steps.checks.thresholds import Measured, MetricThreshold, at_most, fmt, higher_is_better, judge
from steps.checks.verdict import Check
from steps.core.errors import ConfigError, StepFailed
from steps.gate.options import GateConfig
from steps.gate.plan import MORE_RESAMPLES

if TYPE_CHECKING:
    from steps.checks.metric_inputs import Predictions
    from steps.checks.metrics import Interval
    from steps.ci import Face
    from steps.gate.state import GateState

DEFAULT_METRICS = {
    "classification": ("accuracy", "f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}


def _known_direction(name: str) -> bool | None:
    from steps.checks.metrics import METRICS

    spec = METRICS.get(name)
    return spec.higher_is_better if spec else None


def _check_names(task: str, names: list[str], option: str) -> None:
    from steps.checks.metrics import METRICS

    known = sorted(n for n, spec in METRICS.items() if spec.task == task)
    for name in names:
        spec = METRICS.get(name)
        if spec is None or spec.task != task:
            what = "unknown metric" if spec is None else f"a {spec.task} metric"
            raise ConfigError(
                f"{option} {name}: {what}; with --data the gate computes these {task} metrics: "
                f"{', '.join(known)}. Fix the name (or the task: --task)."
            )


def _metric_error(config: GateConfig, task: str, exc: ValueError) -> ConfigError:
    """A metric that cannot be computed on these rows is bad input (exit 2), not a crash: the
    labels, the task or the metric does not fit (the models' own faults are caught before)."""
    taken = "inferred from the labels" if config.task == "auto" else "given"
    return ConfigError(
        f"--data {config.data}: the metrics cannot be computed on these rows as {task} "
        f"({str(exc).rstrip('.')}). Check --task (here {task}, {taken}), the labels in "
        f"--target {config.target}, and the --metrics chosen."
    )


def evaluate_on_data(config: GateConfig, state: GateState, face: Face) -> None:
    import os

    import numpy as np

    from steps.checks import metrics as m
    from steps.checks.metric_inputs import Predictions
    from steps.services.model_code import runner as model_runner

    assert config.target and state.candidate
    y_true = state.data[config.target].to_numpy()
    features = state.data.drop(columns=[config.target])
    state.task = config.task if config.task != "auto" else m.infer_task(y_true)
    judged = list(config.metrics)
    _check_names(state.task, judged, "--metrics")
    _check_names(state.task, _slice_metrics(config), "--slices metric")
    refs = [state.candidate, *([state.champion] if state.champion else [])]
    models = [
        (ref.uri if ref is state.candidate else f"models:/{ref.name}/{ref.version}",
         ref.artifact_uri)
        for ref in refs
    ]  # fmt: skip
    preds = []
    answers = model_runner.score(models, state.artifacts, features, state.task, face)
    state.seed = config.seed if config.seed is not None else derived_seed(
        state.data_digest, [a.digest for a in answers]
    )  # fmt: skip
    for (uri, _), found in zip(models, answers, strict=True):
        if len(found.predicted) != len(features):  # the model's fault, not the data's
            raise StepFailed(
                f"the model {uri} gave {len(found.predicted)} predictions for {len(features)} "
                "rows of --data: a model must answer once per row."
            )
        preds.append(
            Predictions(y_true=y_true, y_pred=found.predicted, proba=found.proba,
                        classes=found.classes, task=state.task)
        )  # fmt: skip
    candidate, champion = preds[0], (preds[1] if len(preds) > 1 else None)
    state.predictions = (candidate, champion)
    defaulted = not judged
    if defaulted:
        judged = list(DEFAULT_METRICS[state.task])
        classes = len(np.unique(y_true))
        if "roc_auc" in judged and classes > 2:
            state.not_judged["roc_auc"] = (
                f"it needs a binary task; these rows have {classes} classes"
            )
        elif "roc_auc" in judged and any(p.proba is None for p in preds):
            state.not_judged["roc_auc"] = (
                "a model compared has no predict_proba (only scikit-learn models give class "
                "probabilities to the gate)"
            )
    for name in judged:
        why = m.cannot_judge(name, preds)
        if why:
            state.not_judged.setdefault(name, why)
    for name, why in state.not_judged.items():
        state.notes.append(f"{name} not judged: {why}.")
    if defaulted:  # asked for by name, the metric stays: its check fails, saying why
        judged = [n for n in judged if n not in state.not_judged]
    without = [r for r, p in zip(refs, preds, strict=True) if p.proba is None]
    asked = [(n, "--metrics") for n in judged] + [
        (n, "--slices metric") for n in _slice_metrics(config)
    ]
    for name, option in asked:
        if m.METRICS[name].needs_proba and without:
            raise ConfigError(
                f"{option} {name}: needs class probabilities, and {_describe_ref(without[0])} "
                "has no predict_proba (only scikit-learn models give them to the gate). Judge "
                "it on accuracy, f1, precision or recall instead."
            )
    try:
        _judge_metrics(config, state, face, judged, candidate, champion)
    except ValueError as exc:
        raise _metric_error(config, state.task, exc) from None
    state.evaluation = (
        f"both scored on the same {len(y_true)} rows of {os.path.basename(config.data or '')}"
        if champion is not None
        else f"scored on {len(y_true)} rows of {os.path.basename(config.data or '')}"
    ) + (
        f" with {state.resamples} {'paired ' if champion is not None else ''}bootstrap "
        f"resamples ({config.confidence:.0%} intervals, seed {state.seed}"
        + (")" if config.seed is not None else ", derived from the data and the models)")
        if state.resamples
        else ""
    )


def derived_seed(data_digest: str, model_digests: list[str]) -> int:
    """The resampling's seed when --seed is not given: fixed by what is judged, so the verdict
    near a threshold cannot be changed by trying seeds."""
    import hashlib

    text = "\n".join([data_digest, *model_digests]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:6], "big")  # 48 bits: exact in JSON


def _describe_ref(ref: Any) -> str:
    return f"version {ref.version} of '{ref.name}'" if ref.version else f"the model {ref.uri}"


def _judge_metrics(
    config: GateConfig, state: GateState, face: Face, judged: list[str],
    candidate: Predictions, champion: Predictions | None,
) -> None:  # fmt: skip
    from steps.checks import metrics as m

    judgeable = [n for n in judged if n not in state.not_judged]
    if (
        not config.resamples
        and champion is not None
        and any((rule := config.metrics.get(n)) is None or rule.empty for n in judged)
    ):
        state.notes.append(
            "--resamples 0: no intervals, so metrics without a threshold are shown, not judged "
            '(the default "not worse" check needs intervals).'
        )
    values = {
        n: (m.score(n, candidate) if n in judgeable else math.nan,
            None if champion is None else m.score(n, champion) if n in judgeable else math.nan)
        for n in judged
    }  # fmt: skip
    resamples, most = config.resamples, config.resamples * MORE_RESAMPLES
    while True:
        intervals = {}
        if resamples and judgeable:
            face.info(
                f"bootstrap: {resamples} {'paired ' if champion else ''}resamples of "
                f"{len(candidate.y_true)} rows (seed {state.seed})"
            )
            intervals = m.bootstrap(
                judgeable, candidate, champion, resamples=resamples, seed=state.seed,
                confidence=config.confidence,
            )  # fmt: skip
        checks = {n: _checks(config, state, n, values[n], intervals.get(n)) for n in judged}
        close = [c.name for found in checks.values() for c in found if c.undecided]
        if not close or resamples >= most:
            break
        # The same seed draws the same first replicates: doubling only adds to them.
        resamples *= 2
        face.info(
            f"{', '.join(close)}: an interval's end lies within the resampling error of its "
            f"threshold; resampling again with {resamples} resamples"
        )
    state.resamples = resamples
    unbounded = [c.name for found in checks.values() for c in found
                 if c.threshold == "not worse (default)"]  # fmt: skip
    if unbounded:
        state.notes.append(
            f"No margin set: {', '.join(unbounded)} (no threshold) reject the candidate only "
            "when it is worse beyond the sampling noise, so a somewhat worse candidate can "
            "pass. Set gate.default-margin (e.g. 0.01) in mlsteps.yaml, or thresholds."
        )
    for name in judged:
        for check in checks[name]:
            if check.undecided:
                check = dataclasses.replace(
                    check, detail=f"{check.detail} after {resamples} resamples (more rows in "
                    "--data would decide it)",
                )  # fmt: skip
            state.checks.append(check)
        found = intervals.get(name)
        state.metrics[name] = {
            "candidate": values[name][0],
            "champion": values[name][1],
            "candidate_interval": _pair(found.candidate) if found else None,
            "champion_interval": _pair(found.champion) if found and found.champion else None,
            "delta_interval": _pair(found.delta) if found and found.delta else None,
            "higher_is_better": higher_is_better(
                name, config.metrics.get(name), _known_direction(name)
            ),
        }


def _checks(
    config: GateConfig, state: GateState, name: str, values: tuple[float, float | None],
    found: Interval | None,
) -> list[Check]:  # fmt: skip
    measured = Measured(
        name=name,
        candidate=values[0],
        champion=values[1],
        candidate_interval=found.candidate if found else None,
        delta_interval=found.delta if found else None,
        relative_interval=found.relative_delta if found else None,
        delta_error=found.delta_error if found else None,
        relative_error=found.relative_error if found else None,
    )
    rule = config.metrics.get(name)
    higher = higher_is_better(name, rule, _known_direction(name))
    checks = judge(measured, rule, higher, margin=config.default_margin)
    if name in state.not_judged:  # asked for by name: its checks fail, saying why
        why = f"not judged: {state.not_judged[name]}"
        checks = [dataclasses.replace(c, passed=False, detail=why) for c in checks] or [
            Check(kind="metric", name=name, passed=False, threshold="a value", detail=why)
        ]
    return checks


def _pair(interval: tuple[float, float]) -> list[float] | None:
    low, high = (float(v) for v in interval)
    return None if math.isnan(low) or math.isnan(high) else [low, high]


def _slice_metrics(config: GateConfig) -> list[str]:
    if config.slices is None:
        return []
    return [*config.slices.metrics, *config.slices.max_gap]


def _run_metrics(state: GateState, run_id: str) -> dict[str, float]:
    run = state.rest._call("GET", "runs/get", params={"run_id": run_id})["run"]
    return {m["key"]: float(m["value"]) for m in run.get("data", {}).get("metrics", [])}


def compare_logged(config: GateConfig, state: GateState) -> None:
    assert state.candidate and state.candidate.run_id
    mine = _run_metrics(state, state.candidate.run_id)
    theirs: dict[str, float] = {}
    if state.champion and state.champion.run_id:
        theirs = _run_metrics(state, state.champion.run_id)
    for name, wanted in config.metrics.items():
        if name not in mine:
            raise ConfigError(
                f"--metrics {name}: the candidate's run {state.candidate.run_id} logged no metric "
                f"'{name}' (it logged: {', '.join(sorted(mine)) or 'none'}). Fix the name, or "
                "give --data and --target to compute it on evaluation data."
            )
        changes = wanted.min_delta or wanted.max_delta
        if changes and state.champion and name not in theirs:
            raise ConfigError(
                f"--metrics {name}: a change threshold needs the champion's value, and the "
                f"champion's run {state.champion.run_id} logged no '{name}'. Give --data and "
                "--target so both models are scored on the same rows."
            )
    names = list(config.metrics) or sorted(set(mine) & set(theirs))
    if not config.metrics:
        state.notes.append(
            "No metric thresholds set and no --data: the logged metrics are shown, not judged."
        )
    for name in names:
        rule = config.metrics.get(name)
        higher = higher_is_better(name, rule, _known_direction_light(name))
        measured = Measured(name=name, candidate=mine[name], champion=theirs.get(name))
        if rule is not None:
            state.checks += judge(measured, rule, higher)
        state.metrics[name] = {
            "candidate": mine[name],
            "champion": theirs.get(name),
            "higher_is_better": higher,
        }
    state.evaluation = "the metrics their runs logged (no evaluation data: no intervals)"


def _known_direction_light(name: str) -> bool | None:
    # Without --data numpy may be missing: metrics.py is not imported for a logged-metrics gate.
    try:
        return _known_direction(name)
    except ImportError:
        return None


def judge_slices(config: GateConfig, state: GateState) -> None:
    from steps.checks import metrics as m

    rules = config.slices
    assert rules is not None and state.predictions is not None
    candidate, champion = state.predictions
    try:
        for column in rules.columns:
            _judge_column(column, rules, state, m, candidate, champion)
    except ValueError as exc:
        raise _metric_error(config, state.task, exc) from None


def _judge_column(
    column: str, rules: Any, state: GateState, m: Any,
    candidate: Predictions, champion: Predictions | None,
) -> None:  # fmt: skip
    groups = state.data[column].astype("string").fillna("<null>").to_numpy()
    per_metric: dict[str, dict[str, float]] = {name: {} for name in rules.max_gap}
    for group in sorted(set(groups)):
        mask = groups == group
        size = int(mask.sum())
        label = f"{column}={group}"
        if size < rules.min_size:
            state.notes.append(
                f"Slice {label}: {size} rows, fewer than min-size {rules.min_size}: not judged."
            )
            continue
        for name, rule in rules.metrics.items():
            state.checks += _slice_checks(m, name, rule, label, candidate, champion, mask)
        for name in rules.max_gap:
            why = m.cannot_judge(name, [candidate], mask)
            per_metric[name][group] = math.nan if why else m.score(name, candidate, mask)
            if why:
                state.notes.append(f"Slice {label}: {name} not judged: {why}.")
    for name, limit in rules.max_gap.items():
        values = {g: v for g, v in per_metric[name].items() if not math.isnan(v)}
        if len(values) < 2:
            state.notes.append(f"Gap of {name} across {column}: fewer than two slices judged.")
            continue
        best, worst = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
        gap = values[best] - values[worst]
        state.checks.append(
            Check(
                kind="gap", name=f"{name} across {column}", candidate=gap,
                threshold=f"≤ {fmt(limit)}", passed=at_most(gap, limit),
                detail=f"highest {column}={best} ({fmt(values[best])}), lowest "
                f"{column}={worst} ({fmt(values[worst])})",
            )
        )  # fmt: skip


def _slice_checks(
    m: Any, name: str, rule: MetricThreshold, label: str,
    candidate: Predictions, champion: Predictions | None, mask: Any,
) -> list[Any]:  # fmt: skip
    why = m.cannot_judge(name, [candidate], mask)
    measured = Measured(
        name=f"{name} [{label}]",
        candidate=math.nan if why else m.score(name, candidate, mask),
        champion=None if champion is None else math.nan if why else m.score(name, champion, mask),
    )
    higher = higher_is_better(name, rule, _known_direction(name))
    # Per-slice rules are value thresholds: a slice's change is shown, not judged.
    return judge(measured, rule, higher, kind="slice")
