"""The bootstrap's replicates, computed from weighted sufficient statistics instead of
scikit-learn's functions.

1,000 replicates × 100,000 rows × several metrics × two models would be tens of thousands of
library calls (minutes). A replicate is only a vector of per-row counts ``w`` (how often each row
was drawn), and every metric here is a function of a few weighted sums ``w @ v`` over per-row
vectors ``v`` (correct, true/predicted positives per class, squared and absolute error, y and
y², per-row log loss), so a chunk of replicates costs one matrix product. ROC AUC is the weighted
Mann–Whitney statistic: the negatives are sorted by score once, and per replicate a cumulative
sum of their weights gives, for each positive, the weight of negatives below it plus half of
those tied with it. The tests (tests/unit/checks/test_metrics.py) hold each formula to
scikit-learn's function called with ``sample_weight=w``, the reference. Separate from
metrics.py, which holds what callers use (the specs, ``score``, ``bootstrap``), because this is
how the bootstrap is made fast, not what it means.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from steps.checks.metric_inputs import Labels, Predictions, finite_numbers

# Counts of one chunk of replicates held at once (rows × chunk): ~40 MB of float64 per array.
_CHUNK_CELLS = 5_000_000
# Metrics from each class's true, predicted and rightly predicted counts.
_PER_CLASS = frozenset(
    {"precision", "recall", "f1", "true_positive_rate", "false_positive_rate", "selection_rate"}
)


def score_replicates(
    evaluators: list[Evaluator], resamples: int, seed: int
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


def _divide(top: npt.NDArray[np.float64], bottom: npt.NDArray[np.float64]) -> Any:
    """top / bottom, nan where bottom is 0 (the metric is undefined there)."""
    out = np.full(np.broadcast(top, bottom).shape, np.nan)
    return np.divide(top, bottom, out=out, where=bottom != 0)


class Evaluator:
    """One model's per-row vectors, prepared once; ``evaluate`` turns a matrix of row weights
    into each metric's value per replicate."""

    def __init__(self, preds: Predictions, metrics: list[str], labels: Labels | None) -> None:
        self.metrics, self.labels = metrics, labels
        n = len(preds.y_true)
        blocks: dict[str, npt.NDArray[Any]] = {"total": np.ones(n)}
        if labels is None:
            y = finite_numbers(preds.y_true, metrics[0], "true values")
            error = finite_numbers(preds.y_pred, metrics[0], "predictions") - y
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
