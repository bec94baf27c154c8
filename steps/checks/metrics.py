"""Model metrics on an evaluation set, and paired bootstrap intervals for a candidate against
its champion.

``score`` gives one point estimate with scikit-learn's own metric functions (on all rows or on a
slice). ``bootstrap`` gives percentile intervals for the candidate, the champion, and their
difference. The difference is *paired*: both models are scored on the same resampled rows in
every replicate, so the interval of the delta reflects how the two models' errors move together,
and two models that differ by less than the sampling noise get a delta interval that contains 0.

The bootstrap does not call scikit-learn: it computes every replicate from a few weighted sums
(steps/checks/bootstrap_sums.py says how, and why). The labels of a classification task are
resolved once, for every model compared (steps/checks/metric_inputs.py).

Undefined values are nan, never a made-up number: recall or AUC in a replicate without positives,
precision without predicted positives. Such replicates are left out of the percentiles; when
fewer than half of them remain, the interval is (nan, nan) (too few defined replicates to say
anything). Multiclass precision, recall, f1 and the two rates are macro averages over the classes
defined in that sample (scikit-learn's ``zero_division=nan``). A binary task's positive class is
``pos_label``, by default the greater of the two labels (1 for 0/1, "yes" for no/yes).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from steps.checks.bootstrap_sums import Evaluator, score_replicates
from steps.checks.metric_inputs import (
    CLASSIFICATION,
    REGRESSION,
    Labels,
    Predictions,
    finite_numbers,
    resolve_labels,
)

TASKS = (CLASSIFICATION, REGRESSION)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # "accuracy"
    task: str  # "classification" | "regression"
    higher_is_better: bool
    needs_proba: bool  # roc_auc, log_loss
    help: str  # one line for docs and errors


def _spec(name: str, task: str, higher: bool, help: str, *, proba: bool = False) -> MetricSpec:
    return MetricSpec(name, task, higher, proba, help)


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        _spec("accuracy", CLASSIFICATION, True, "share of rows predicted right"),
        _spec("precision", CLASSIFICATION, True, "of the rows predicted positive, share right"),
        _spec("recall", CLASSIFICATION, True, "of the positive rows, share found"),
        _spec("f1", CLASSIFICATION, True, "harmonic mean of precision and recall"),
        _spec("roc_auc", CLASSIFICATION, True, "area under the ROC curve (binary)", proba=True),
        _spec("log_loss", CLASSIFICATION, False, "cross-entropy of the probabilities", proba=True),
        _spec("true_positive_rate", CLASSIFICATION, True, "the same as recall"),
        _spec("false_positive_rate", CLASSIFICATION, False, "of the negatives, share flagged"),
        _spec("selection_rate", CLASSIFICATION, True, "share predicted positive (bias gaps)"),
        _spec("rmse", REGRESSION, False, "root mean squared error"),
        _spec("mse", REGRESSION, False, "mean squared error"),
        _spec("mae", REGRESSION, False, "mean absolute error"),
        _spec("r2", REGRESSION, True, "coefficient of determination"),
        _spec("mape", REGRESSION, False, "mean absolute percentage error (a fraction)"),
    )
}


_MAX_CLASSES_INFERRED = 20


def infer_task(y_true: npt.ArrayLike) -> str:
    """Return "classification" for bool, text or labels, and for integers with at most 20 distinct
    values; "regression" otherwise. An object column holding only numbers counts as numbers."""
    y = np.asarray(y_true)
    if y.size == 0:
        raise ValueError("infer_task: the target column is empty")
    if y.dtype.kind == "O":
        if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in y):
            return CLASSIFICATION
        y = y.astype(np.float64)
    if y.dtype.kind in "bUS":
        return CLASSIFICATION
    if y.dtype.kind not in "iuf":
        return CLASSIFICATION
    distinct = np.unique(y)
    integral = bool(np.all(np.isfinite(distinct)) and np.all(distinct == np.floor(distinct)))
    if integral and len(distinct) <= _MAX_CLASSES_INFERRED:
        return CLASSIFICATION
    return REGRESSION


def _known(metric: str) -> MetricSpec:
    if metric not in METRICS:
        known = ", ".join(sorted(METRICS))
        raise ValueError(f"unknown metric {metric!r}: the gate computes {known}")
    return METRICS[metric]


def validate(metrics: Sequence[str], preds: Predictions, who: str = "the model") -> None:
    """ValueError naming the metric when it cannot be computed on these predictions."""
    if preds.task not in TASKS:
        raise ValueError(f"task {preds.task!r} of {who}: give one of {', '.join(TASKS)}")
    n = len(preds.y_true)
    for metric in metrics:
        spec = _known(metric)
        if spec.task != preds.task:
            others = ", ".join(m for m, s in METRICS.items() if s.task == preds.task)
            raise ValueError(
                f"{metric} is a {spec.task} metric, but {who} is scored as {preds.task}: "
                f"choose among {others}"
            )
        if spec.needs_proba and preds.proba is None:
            raise ValueError(
                f"{metric} needs predicted probabilities and {who} gave none: use a model "
                "with predict_proba, or a metric computed from labels (accuracy, f1, …)"
            )
        if n == 0:
            raise ValueError(f"{metric}: there are no evaluation rows")
        if len(preds.y_pred) != n:
            raise ValueError(
                f"{metric}: {who} has {len(preds.y_pred)} predictions for {n} true values; "
                "predict on exactly the evaluation rows"
            )
        if spec.needs_proba and preds.proba is not None and preds.proba.shape[0] != n:
            raise ValueError(
                f"{metric}: {who} has {preds.proba.shape[0]} rows of probabilities for {n} "
                "true values; predict on exactly the evaluation rows"
            )


def score(metric: str, preds: Predictions, rows: npt.NDArray[np.bool_] | None = None) -> float:
    """``metric`` on all rows, or on the rows where the boolean mask ``rows`` is True (a slice).

    Computed by scikit-learn. Labels, the positive class and the multiclass average come from all
    the rows, so a slice is scored the way the whole set is. nan when the metric is undefined on
    these rows (recall without positives)."""
    validate([metric], preds)
    mask = np.ones(len(preds.y_true), dtype=bool) if rows is None else np.asarray(rows)
    if mask.dtype != np.bool_ or mask.shape != preds.y_true.shape:
        raise ValueError(f"{metric}: rows must be a boolean mask with one value per row")
    if not mask.any():
        raise ValueError(f"{metric}: the rows mask selects no rows")
    with warnings.catch_warnings():
        # Undefined values come back as nan; the warning would only repeat that in the log.
        warnings.filterwarnings("ignore", message=".*(ill-defined|not well-defined).*")
        if preds.task == REGRESSION:
            return _score_regression(metric, preds, mask)
        return _score_classification(metric, preds, mask, resolve_labels([preds], [metric]))


# Metrics that say nothing about a binary task's rows without a positive (or a negative) row:
# recall and roc_auc are undefined there, f1 reads 0 for every model (or is undefined).
_NEEDS_POSITIVES = frozenset({"recall", "true_positive_rate", "f1", "roc_auc"})
_NEEDS_NEGATIVES = frozenset({"false_positive_rate", "roc_auc"})


def cannot_judge(
    metric: str, models: Sequence[Predictions], rows: npt.NDArray[np.bool_] | None = None
) -> str | None:
    """Why ``metric`` cannot judge these rows (all, or a slice), or None when it can: a binary
    task's rows hold no positive label (recall, f1, roc_auc) or no negative one."""
    if models[0].task != CLASSIFICATION or metric not in _NEEDS_POSITIVES | _NEEDS_NEGATIVES:
        return None
    try:
        labels = resolve_labels(models, [metric])
    except ValueError:
        return None  # score() says why, naming the metric
    if labels.pos is None:
        return None  # multiclass: macro averages over the classes present
    y = models[0].y_true if rows is None else models[0].y_true[rows]
    positive = labels.encode(y) == labels.pos
    label = labels.values.tolist()[labels.pos]
    if metric in _NEEDS_POSITIVES and not positive.any():
        return f"no row has the positive label {label!r}"
    if metric in _NEEDS_NEGATIVES and positive.all():
        return f"every row has the positive label {label!r} (no negative row)"
    return None


def _score_regression(metric: str, preds: Predictions, mask: npt.NDArray[np.bool_]) -> float:
    from sklearn import metrics as skm  # type: ignore[import-untyped]

    y = finite_numbers(preds.y_true, metric, "true values")[mask]
    p = finite_numbers(preds.y_pred, metric, "predictions")[mask]
    if metric == "rmse":
        return math.sqrt(float(skm.mean_squared_error(y, p)))
    function = {
        "mse": skm.mean_squared_error,
        "mae": skm.mean_absolute_error,
        "r2": skm.r2_score,
        "mape": skm.mean_absolute_percentage_error,
    }[metric]
    return float(function(y, p))


def _score_classification(
    metric: str, preds: Predictions, mask: npt.NDArray[np.bool_], labels: Labels
) -> float:
    from sklearn import metrics as skm

    y, p = preds.y_true[mask], preds.y_pred[mask]
    names = list(labels.values)
    pos = None if labels.pos is None else labels.values[labels.pos]
    if metric == "accuracy":
        return float(skm.accuracy_score(y, p))
    if metric in ("precision", "recall", "true_positive_rate", "f1"):
        function = {"precision": skm.precision_score, "f1": skm.f1_score}.get(
            metric, skm.recall_score
        )
        average = "macro" if pos is None else "binary"
        kwargs: dict[str, Any] = {"average": average, "zero_division": np.nan}
        if pos is None:
            kwargs["labels"] = names
        else:
            kwargs["pos_label"] = pos
        return float(function(y, p, **kwargs))
    if metric in ("false_positive_rate", "selection_rate"):
        # rows: label; columns: [[tn, fp], [fn, tp]]
        matrix = skm.multilabel_confusion_matrix(y, p, labels=names).astype(np.float64)
        tn, fp, fn, tp = (matrix[:, i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
        if metric == "selection_rate":
            return _ratio((tp + fp)[labels.pos], float(len(y)))
        rates = np.array([_ratio(f, f + t) for f, t in zip(fp, tn, strict=True)])
        if pos is not None:
            return float(rates[labels.pos])
        rates[(tp + fp + fn) == 0] = np.nan  # a class absent from these rows has no rate
        return _nanmean(rates)
    proba = labels.proba_of(preds, metric)[mask]
    if metric == "log_loss":
        return float(skm.log_loss(y, proba, labels=names))
    positive = y == pos
    if positive.all() or not positive.any():
        return math.nan
    return float(skm.roc_auc_score(positive, proba[:, labels.pos]))


def _ratio(top: float, bottom: float) -> float:
    return float(top) / float(bottom) if bottom else math.nan


def _nanmean(values: npt.NDArray[np.float64]) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


@dataclass(frozen=True)
class Interval:
    candidate: tuple[float, float]
    champion: tuple[float, float] | None
    delta: tuple[float, float] | None  # candidate − champion, paired
    relative_delta: tuple[float, float] | None  # (candidate − champion) / |champion|
    # How far each end of delta (relative_delta) could move with other resamples: the Monte
    # Carlo error of the percentile (95%), from the order statistics around it.
    delta_error: tuple[float, float] | None = None
    relative_error: tuple[float, float] | None = None


def score_weighted(
    metrics: Sequence[str], preds: Predictions, weights: npt.ArrayLike
) -> dict[str, npt.NDArray[np.float64]]:
    """Each metric under row weights, computed from weighted sums (the bootstrap's own path).

    ``weights`` is one weight per row, or a (replicates × rows) matrix; the result has one value
    per row of weights. Equal to scikit-learn's functions with ``sample_weight=weights``."""
    validate(metrics, preds)
    w = np.asarray(weights, dtype=np.float64)
    matrix = w.reshape(1, -1) if w.ndim == 1 else w
    if matrix.ndim != 2 or matrix.shape[1] != len(preds.y_true):
        raise ValueError(f"weights: need one weight per row ({len(preds.y_true)} per replicate)")
    labels = resolve_labels([preds], metrics) if preds.task == CLASSIFICATION else None
    return Evaluator(preds, list(metrics), labels).evaluate(np.ascontiguousarray(matrix.T))


def bootstrap(
    metrics: Sequence[str],
    candidate: Predictions,
    champion: Predictions | None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Percentile intervals of each metric for the candidate, the champion and their paired
    difference, from ``resamples`` resamples of the rows (the same rows for both models).

    A fixed ``seed`` gives the same intervals on every run. An interval is (nan, nan) when fewer
    than half of the replicates define the metric (e.g. almost no positives)."""
    names = list(metrics)
    if not names:
        raise ValueError("bootstrap: name at least one metric")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples: {resamples!r} is not a positive whole number; try 1000")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: {confidence!r} must lie between 0 and 1, e.g. 0.95")
    models = [candidate] if champion is None else [candidate, champion]
    validate(names, candidate, "the candidate")
    if champion is not None:
        validate(names, champion, "the champion")
        if champion.task != candidate.task or not np.array_equal(champion.y_true, candidate.y_true):
            raise ValueError(
                f"{names[0]}: the candidate and the champion must be scored on the same rows "
                "(same true values, same order, same task) for a paired comparison"
            )
    labels = resolve_labels(models, names) if candidate.task == CLASSIFICATION else None
    values = score_replicates([Evaluator(m, names, labels) for m in models], resamples, seed)
    alpha = 1.0 - confidence
    result: dict[str, Interval] = {}
    for name in names:
        cand = values[0][name]
        if champion is None:
            result[name] = Interval(_percentiles(cand, alpha), None, None, None)
            continue
        champ = values[1][name]
        delta = cand - champ
        relative = np.full_like(delta, np.nan)
        np.divide(delta, np.abs(champ), out=relative, where=champ != 0)
        result[name] = Interval(
            _percentiles(cand, alpha),
            _percentiles(champ, alpha),
            _percentiles(delta, alpha),
            _percentiles(relative, alpha),
            _end_errors(delta, alpha),
            _end_errors(relative, alpha),
        )
    return result


def _end_errors(values: npt.NDArray[np.float64], alpha: float) -> tuple[float, float]:
    """The resampling error of each end of the percentile interval: with B defined replicates
    the q-th percentile's rank is binomial, so 95% of reruns with other resamples put it
    within q ± 1.96·√(q(1−q)/B); the error is the larger distance to those percentiles."""
    defined = values[~np.isnan(values)]
    if defined.size * 2 < values.size or defined.size == 0:
        return (math.nan, math.nan)
    errors = []
    for q in (alpha / 2, 1 - alpha / 2):
        spread = 1.96 * math.sqrt(q * (1 - q) / defined.size)
        low, mid, high = np.percentile(
            defined, [100 * max(q - spread, 0.0), 100 * q, 100 * min(q + spread, 1.0)]
        )
        errors.append(float(max(mid - low, high - mid)))
    return (errors[0], errors[1])


def _percentiles(values: npt.NDArray[np.float64], alpha: float) -> tuple[float, float]:
    defined = values[~np.isnan(values)]
    if defined.size * 2 < values.size or defined.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(defined, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(low), float(high))
