"""What the metric formulas need from the models' answers, checked and put in one form: the
values of a regression as finite numbers, and the labels of a classification task as one sorted
set shared by every model compared, with the positive class and each model's probability
columns aligned to it. Separate from metrics.py because both paths use it, scikit-learn's
(``score``) and the weighted sums (bootstrap_sums.py), and both must see the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

CLASSIFICATION = "classification"
REGRESSION = "regression"

# Metrics defined only when one class is the positive one.
BINARY_ONLY = frozenset({"roc_auc", "selection_rate"})


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


def finite_numbers(values: npt.NDArray[Any], metric: str, what: str) -> npt.NDArray[np.float64]:
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{metric}: the {what} must be numbers for a regression metric") from None
    if not np.isfinite(numbers).all():
        raise ValueError(f"{metric}: the {what} contain nan or infinite values; drop those rows")
    return numbers


@dataclass(frozen=True)
class Labels:
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


def resolve_labels(models: Sequence[Predictions], metrics: Sequence[str]) -> Labels:
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
        return Labels(values, None)
    if len(values) == 1 and values.dtype.kind in "biuf" and values[0] in (0, 1):
        # 0/1 labels with one of them absent from every row: 1 is still the positive class.
        values = np.unique(np.concatenate([values, np.array([0, 1]).astype(values.dtype)]))
    if pos_label is None:
        if len(values) == 1:
            raise ValueError(
                f"{metric}: every row has the label {values.tolist()[0]!r}, so the positive class "
                "is unknown: give pos_label, or the model's classes"
            )
        return Labels(values, len(values) - 1)
    where = np.flatnonzero(values == pos_label)
    if where.size == 0:
        raise ValueError(
            f"{metric}: pos_label={pos_label!r} is not one of the labels {values.tolist()}"
        )
    return Labels(values, int(where[0]))
