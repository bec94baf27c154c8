"""Model metrics on an evaluation set, and paired bootstrap intervals for a candidate against
its champion.

``score`` gives one point estimate with scikit-learn's own metric functions (on all rows or on a
slice). ``bootstrap`` gives percentile intervals for the candidate, the champion, and their
difference. The difference is *paired*: both models are scored on the same resampled rows in
every replicate, so the interval of the delta reflects how the two models' errors move together,
and two models that differ by less than the sampling noise get a delta interval that contains 0.

Why the bootstrap does not call scikit-learn: 1,000 replicates × 100,000 rows × several metrics
× two models would be tens of thousands of library calls (minutes). A replicate is only a
vector of per-row counts ``w`` (how often each row was drawn), and every metric here is a
function of a few weighted sums ``w @ v`` over per-row vectors ``v`` (correct, true/predicted
positives per class, squared and absolute error, y and y², per-row log loss), so a chunk of
replicates costs one matrix product. ROC AUC is the weighted Mann–Whitney statistic: the
negatives are sorted by score once, and per replicate a cumulative sum of their weights gives,
for each positive, the weight of negatives below it plus half of those tied with it. The tests
(tests/unit/test_gate_metrics.py) hold each formula to scikit-learn's function called with
``sample_weight=w``, the reference.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# Counts of one chunk of replicates held at once (rows × chunk): ~40 MB of float64 per array.
_CHUNK_CELLS = 5_000_000


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

# Metrics defined only when one class is the positive one.
BINARY_ONLY = frozenset({"roc_auc", "selection_rate"})
# Metrics from each class's true, predicted and rightly predicted counts.
_PER_CLASS = frozenset(
    {"precision", "recall", "f1", "true_positive_rate", "false_positive_rate", "selection_rate"}
)

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


@dataclass(frozen=True)
class Predictions:
    """One model's answers on the evaluation rows. Sequences are turned into numpy arrays."""

    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any]  # labels (classification) or values (regression)
    proba: npt.NDArray[Any] | None = None  # n × len(classes), columns in `classes` order
    classes: tuple[Any, ...] | None = None
    task: str = CLASSIFICATION
    pos_label: Any = None  # None → the greater of the two labels

    def __post_init__(self) -> None:
        # Frozen, but callers hand in lists and pandas columns: store plain arrays once.
        object.__setattr__(self, "y_true", np.asarray(self.y_true))
        object.__setattr__(self, "y_pred", np.asarray(self.y_pred))
        if self.proba is not None:
            object.__setattr__(self, "proba", np.asarray(self.proba, dtype=np.float64))
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))


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
        return _score_classification(metric, preds, mask, _resolve_labels([preds], [metric]))


def _score_regression(metric: str, preds: Predictions, mask: npt.NDArray[np.bool_]) -> float:
    from sklearn import metrics as skm  # type: ignore[import-untyped]

    y = _finite(preds.y_true, metric, "true values")[mask]
    p = _finite(preds.y_pred, metric, "predictions")[mask]
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
    metric: str, preds: Predictions, mask: npt.NDArray[np.bool_], labels: _Labels
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


def _finite(values: npt.NDArray[Any], metric: str, what: str) -> npt.NDArray[np.float64]:
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{metric}: the {what} must be numbers for a regression metric") from None
    if not np.isfinite(numbers).all():
        raise ValueError(f"{metric}: the {what} contain nan or infinite values; drop those rows")
    return numbers


@dataclass(frozen=True)
class Interval:
    candidate: tuple[float, float]
    champion: tuple[float, float] | None
    delta: tuple[float, float] | None  # candidate − champion, paired
    relative_delta: tuple[float, float] | None  # (candidate − champion) / |champion|


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
    labels = _resolve_labels([preds], metrics) if preds.task == CLASSIFICATION else None
    return _Evaluator(preds, list(metrics), labels).evaluate(np.ascontiguousarray(matrix.T))


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
    labels = _resolve_labels(models, names) if candidate.task == CLASSIFICATION else None
    values = _replicates([_Evaluator(m, names, labels) for m in models], resamples, seed)
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
        )
    return result


def _replicates(
    evaluators: list[_Evaluator], resamples: int, seed: int
) -> list[dict[str, npt.NDArray[np.float64]]]:
    """Each metric of each model in every replicate; a replicate's rows are the same for all."""
    n = evaluators[0].matrix.shape[0]
    values = [{name: np.empty(resamples) for name in e.metrics} for e in evaluators]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _CHUNK_CELLS // n))
    # One thread draws the next chunk's counts (numpy frees the GIL) while this one scores the
    # current chunk; the draws stay in one sequence, so a seed still fixes every replicate.
    with ThreadPoolExecutor(max_workers=1) as drawer:
        ahead = drawer.submit(_resample_counts, rng, n, chunk)
        for start in range(0, resamples, chunk):
            counts = ahead.result()
            after = start + chunk
            if after < resamples:
                ahead = drawer.submit(_resample_counts, rng, n, min(chunk, resamples - after))
            for evaluator, out in zip(evaluators, values, strict=True):
                for name, replicate in evaluator.evaluate(counts).items():
                    out[name][start : start + counts.shape[1]] = replicate
    return values


def _resample_counts(rng: np.random.Generator, n: int, replicates: int) -> npt.NDArray[np.float64]:
    """How often each row is drawn (n draws with replacement): rows × replicates, as floats so
    the weighted sums run as one BLAS matrix product."""
    counts = np.empty((n, replicates), dtype=np.float64)
    for column in range(replicates):
        counts[:, column] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    return counts


def _percentiles(values: npt.NDArray[np.float64], alpha: float) -> tuple[float, float]:
    defined = values[~np.isnan(values)]
    if defined.size * 2 < values.size or defined.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(defined, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(low), float(high))


@dataclass(frozen=True)
class _Labels:
    """The classes of a classification task, shared by every model compared on it."""

    values: npt.NDArray[Any]  # sorted: the union of true, predicted and the models' classes
    pos: int | None  # index of the positive class; None: multiclass, macro averages

    def encode(self, y: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        return np.searchsorted(self.values, y)

    def proba_of(self, preds: Predictions, metric: str) -> npt.NDArray[np.float64]:
        """The model's probabilities with one column per label of ``values`` (0 for a label the
        model does not know), whatever order its own ``classes`` are in."""
        proba = preds.proba
        assert proba is not None  # validate() refused proba metrics without it
        if not (np.isfinite(proba).all() and proba.min() >= 0 and proba.max() <= 1):
            raise ValueError(f"{metric}: probabilities must be finite numbers between 0 and 1")
        n, k = len(proba), len(self.values)
        out = np.zeros((n, k))
        if proba.ndim == 1:  # one column: the positive class's probability
            if self.pos is None or k != 2:
                raise ValueError(f"{metric}: one column of probabilities needs a binary task")
            out[:, self.pos], out[:, 1 - self.pos] = proba, 1 - proba
            return out
        classes = preds.classes
        if classes is None and proba.shape[1] == k:
            classes = tuple(self.values)  # scikit-learn's convention: columns in sorted order
        if classes is None or len(classes) != proba.shape[1]:
            raise ValueError(
                f"{metric}: {proba.shape[1]} columns of probabilities; give classes, the label "
                "of each column in order (the model's classes_)"
            )
        out[:, self.encode(np.asarray(classes))] = proba
        return out


def _label_kinds(labels: npt.NDArray[Any]) -> set[str]:
    if labels.dtype.kind in "US":
        return {"text"}
    if labels.dtype.kind == "O":  # pandas keeps text in object columns
        return {"text" if isinstance(v, str) else "other" for v in labels}
    return {"other"}


def _resolve_labels(models: Sequence[Predictions], metrics: Sequence[str]) -> _Labels:
    metric = metrics[0]
    parts = [np.asarray(a) for m in models for a in (m.y_true, m.y_pred)]
    parts += [np.asarray(m.classes) for m in models if m.classes is not None]
    if len({kind for a in parts for kind in _label_kinds(a)}) > 1:
        raise ValueError(
            f"{metric}: true labels, predicted labels and classes mix text and numbers; "
            "give them all as the same type"
        )
    try:
        values = np.unique(np.concatenate(parts))
    except TypeError as error:
        raise ValueError(f"{metric}: labels cannot be compared ({error})") from None
    given = {m.pos_label for m in models if m.pos_label is not None}
    if len(given) > 1:
        raise ValueError(f"{metric}: the models name different positive labels: {given}")
    pos_label = given.pop() if given else None
    if len(values) > 2:
        if pos_label is not None:
            raise ValueError(
                f"{metric}: pos_label={pos_label!r} applies to a binary task; these rows have "
                f"{len(values)} classes (metrics are macro-averaged): drop pos_label"
            )
        binary_only = sorted(BINARY_ONLY.intersection(metrics))
        if binary_only:
            raise ValueError(
                f"{binary_only[0]} needs a binary task; these rows have {len(values)} classes: "
                "use accuracy, f1, precision, recall or log_loss"
            )
        return _Labels(values, None)
    if len(values) == 1 and values.dtype.kind in "biuf" and values[0] in (0, 1):
        # 0/1 labels with one of them absent from every row: 1 is still the positive class.
        values = np.unique(np.concatenate([values, np.array([0, 1]).astype(values.dtype)]))
    if pos_label is None:
        if len(values) == 1:
            raise ValueError(
                f"{metric}: every row has the label {values.tolist()[0]!r}, so the positive class "
                "is unknown: give pos_label, or the model's classes"
            )
        return _Labels(values, len(values) - 1)
    where = np.flatnonzero(values == pos_label)
    if where.size == 0:
        raise ValueError(
            f"{metric}: pos_label={pos_label!r} is not one of the labels {values.tolist()}"
        )
    return _Labels(values, int(where[0]))


def _divide(top: npt.NDArray[np.float64], bottom: npt.NDArray[np.float64]) -> Any:
    """top / bottom, nan where bottom is 0 (the metric is undefined there)."""
    out = np.full(np.broadcast(top, bottom).shape, np.nan)
    return np.divide(top, bottom, out=out, where=bottom != 0)


class _Evaluator:
    """One model's per-row vectors, prepared once; ``evaluate`` turns a matrix of row weights
    into each metric's value per replicate."""

    def __init__(self, preds: Predictions, metrics: list[str], labels: _Labels | None) -> None:
        self.metrics, self.labels = metrics, labels
        n = len(preds.y_true)
        blocks: dict[str, npt.NDArray[Any]] = {"total": np.ones(n)}
        if labels is None:
            y = _finite(preds.y_true, metrics[0], "true values")
            error = _finite(preds.y_pred, metrics[0], "predictions") - y
            # Centred y keeps Σw·y² − (Σw·y)²/Σw free of cancellation when y sits far from 0.
            centred = y - y.mean()
            blocks |= {"squared": error**2, "absolute": np.abs(error), "y": centred}
            blocks |= {"yy": centred**2}
            blocks["relative"] = np.abs(error) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
        else:
            truth, predicted = labels.encode(preds.y_true), labels.encode(preds.y_pred)
            blocks["correct"] = truth == predicted
            if set(metrics) & _PER_CLASS:
                # Binary: only the positive class's counts; multiclass: every class's.
                own = np.arange(len(labels.values)) if labels.pos is None else [labels.pos]
                is_true, is_pred = truth[:, None] == own, predicted[:, None] == own
                blocks |= {"hits": is_true & is_pred, "predicted": is_pred, "true": is_true}
            if "log_loss" in metrics:
                proba = labels.proba_of(preds, "log_loss")[np.arange(n), truth]
                eps = np.finfo(np.float64).eps
                blocks["log_loss"] = -np.log(np.clip(proba, eps, 1 - eps))
            if "roc_auc" in metrics:
                self._prepare_auc(labels.proba_of(preds, "roc_auc"), truth)
        # Where each block's columns sit in the matrix, so one product gives every sum.
        self.at: dict[str, slice] = {}
        for name, block in blocks.items():
            start = sum(s.stop - s.start for s in self.at.values())
            self.at[name] = slice(start, start + (block.shape[1] if block.ndim == 2 else 1))
        self.matrix = np.column_stack([b.astype(np.float64) for b in blocks.values()])

    def _prepare_auc(self, proba: npt.NDArray[np.float64], truth: npt.NDArray[np.intp]) -> None:
        assert self.labels is not None and self.labels.pos is not None
        scores, positive = proba[:, self.labels.pos], truth == self.labels.pos
        negatives = np.flatnonzero(~positive)
        self.negatives = negatives[np.argsort(scores[negatives], kind="stable")]
        self.positives = np.flatnonzero(positive)
        ranked = scores[self.negatives]
        # For each positive: how many sorted negatives score below it; ties are rare with
        # continuous scores, so only the tied positives pay for a second look-up.
        self.below = np.searchsorted(ranked, scores[self.positives], side="left")
        not_above = np.searchsorted(ranked, scores[self.positives], side="right")
        self.tied = np.flatnonzero(not_above != self.below)
        self.tied_not_above = not_above[self.tied]

    def _auc(self, weights: npt.NDArray[np.float64]) -> Any:
        # Rows × replicates: gathering whole rows copies contiguous runs, and the cumulative
        # sum runs down the rows for all replicates at once (twice as fast as replicate rows).
        negative = np.zeros((len(self.negatives) + 1, weights.shape[1]))
        np.cumsum(np.take(weights, self.negatives, axis=0), axis=0, out=negative[1:])
        positive = np.take(weights, self.positives, axis=0)
        # Each (positive, negative) pair scores 1 when the negative is below, ½ when tied.
        pairs = np.einsum("ij,ij->j", positive, np.take(negative, self.below, axis=0))
        if self.tied.size:
            ties = np.take(negative, self.tied_not_above, axis=0)
            ties -= np.take(negative, self.below[self.tied], axis=0)
            pairs += 0.5 * np.einsum("ij,ij->j", np.take(positive, self.tied, axis=0), ties)
        return _divide(pairs, positive.sum(axis=0) * negative[-1])

    def evaluate(self, weights: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
        """``weights``: rows × replicates. Returns one value per replicate for each metric."""
        sums = weights.T @ self.matrix
        total = sums[:, 0]

        def summed(name: str) -> Any:
            return sums[:, self.at[name]].sum(axis=1)

        def mean(name: str) -> Any:
            return _divide(summed(name), total)

        if self.labels is None:
            sse, sy = summed("squared"), summed("y")
            spread = summed("yy") - _divide(sy * sy, total)
            # scikit-learn's r2 on constant y: 1 for a perfect fit, else 0 (not ±inf).
            r2 = np.where(spread > 0, 1 - _divide(sse, spread), np.where(sse == 0, 1.0, 0.0))
            found = {"mse": mean("squared"), "mae": mean("absolute"), "mape": mean("relative")}
            found |= {"rmse": np.sqrt(found["mse"]), "r2": r2}
            return {m: found[m] for m in self.metrics}
        out: dict[str, npt.NDArray[np.float64]] = {}
        for metric in self.metrics:
            if metric in ("accuracy", "log_loss"):
                out[metric] = mean("correct" if metric == "accuracy" else metric)
            elif metric == "roc_auc":
                out[metric] = self._auc(weights)
            else:
                hits, predicted, true = (sums[:, self.at[b]] for b in ("hits", "predicted", "true"))
                per_class = _per_class(metric, hits, predicted, true, total[:, None])
                binary = self.labels.pos is not None
                out[metric] = (
                    per_class[:, 0] if binary else _macro(per_class, predicted + true == 0)
                )
        return out


def _per_class(metric: str, hits: Any, predicted: Any, true: Any, total: Any) -> Any:
    """One value per replicate (rows) and class (columns), from the weighted counts."""
    if metric == "precision":
        return _divide(hits, predicted)
    if metric in ("recall", "true_positive_rate"):
        return _divide(hits, true)
    if metric == "f1":  # 2·tp / (2·tp + fp + fn), and 2·tp + fp + fn = predicted + true
        return _divide(2 * hits, predicted + true)
    if metric == "false_positive_rate":
        return _divide(predicted - hits, total - true)
    return _divide(predicted, total)  # selection_rate


def _macro(values: npt.NDArray[np.float64], absent: npt.NDArray[np.bool_]) -> Any:
    """Mean over the classes where the value is defined (a class with neither true nor
    predicted rows in the sample counts for none), nan where no class is."""
    values = np.where(absent, np.nan, values)
    defined = ~np.isnan(values)
    return _divide(np.where(defined, values, 0.0).sum(axis=1), defined.sum(axis=1) * 1.0)
