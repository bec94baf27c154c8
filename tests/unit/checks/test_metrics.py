"""Metrics and paired bootstrap intervals (steps/checks/metrics.py and the weighted sums behind
it, steps/checks/bootstrap_sums.py): pure numbers, no I/O.

scikit-learn is the reference: every weighted-sum formula of the bootstrap is held to
scikit-learn's own function called with ``sample_weight`` = the resample's counts.
"""

from __future__ import annotations

import math
import socket
import subprocess
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm  # type: ignore[import-untyped]

from steps.checks import bootstrap_sums, metric_inputs, metrics
from steps.checks.metric_inputs import Predictions
from steps.checks.metrics import (
    METRICS,
    Interval,
    bootstrap,
    infer_task,
    score,
    score_weighted,
)

CLASSIFICATION = [m for m, s in METRICS.items() if s.task == "classification"]
REGRESSION = [m for m, s in METRICS.items() if s.task == "regression"]
MACRO = [m for m in CLASSIFICATION if m not in metric_inputs.BINARY_ONLY]


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring is arithmetic: a socket or a process here is a bug."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("metrics must do no I/O")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def resample_counts(n: int, how_many: int, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(how_many)]


def binary(n: int = 300, seed: int = 1) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Rounded to tenths: many scores tie, within and across the two classes.
    p1 = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1), 1)
    return Predictions(y, (p1 >= 0.5).astype(int), np.column_stack([1 - p1, p1]), (0, 1))


def multiclass(n: int = 300, seed: int = 2) -> Predictions:
    rng = np.random.default_rng(seed)
    labels = np.array(["ant", "bee", "cat", "dog"])
    y = labels[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    y[0] = "dog"  # a class with one true row: many resamples miss it
    pred = np.where(rng.random(n) < 0.7, y, labels[rng.integers(0, 4, n)])
    proba = rng.dirichlet(np.ones(4), n)
    # The model lists its classes in its own order; the columns follow it.
    return Predictions(y, pred, proba[:, ::-1], ("dog", "cat", "bee", "ant"))


def regression(n: int = 300, seed: int = 3) -> Predictions:
    rng = np.random.default_rng(seed)
    # Far from 0: the r2 spread must not lose digits to cancellation.
    y = 1_000 + rng.normal(0, 5, n)
    return Predictions(y, y + rng.normal(0, 2, n), task="regression")


def given(y: Any, pred: Any, proba: Any = None, classes: Any = None, **kw: Any) -> Predictions:
    """Predictions from plain lists, as a caller might hold them."""
    as_array = None if proba is None else np.array(proba)
    return Predictions(np.array(y), np.array(pred), as_array, classes, **kw)


def sklearn_weighted(metric: str, preds: Predictions, w: np.ndarray) -> float:
    """The reference: scikit-learn with sample_weight, written out here independently."""
    y, p = preds.y_true, preds.y_pred
    labels = sorted(set(y) | set(p) | set(preds.classes or ()))
    binary_task = len(labels) <= 2
    pos = labels[-1]
    kw: dict[str, Any] = {"sample_weight": w}
    if metric in ("rmse", "mse", "mae", "r2", "mape"):
        fn = {
            "mse": skm.mean_squared_error,
            "mae": skm.mean_absolute_error,
            "r2": skm.r2_score,
            "mape": skm.mean_absolute_percentage_error,
        }.get(metric)
        return (
            math.sqrt(skm.mean_squared_error(y, p, **kw)) if fn is None else float(fn(y, p, **kw))
        )
    if metric == "accuracy":
        return float(skm.accuracy_score(y, p, **kw))
    if metric in ("precision", "recall", "true_positive_rate", "f1"):
        fn = {"precision": skm.precision_score, "f1": skm.f1_score}.get(metric, skm.recall_score)
        avg = {"average": "binary", "pos_label": pos} if binary_task else {"average": "macro"}
        return float(fn(y, p, zero_division=np.nan, **avg, **kw))
    if metric in ("false_positive_rate", "selection_rate"):
        cm = skm.multilabel_confusion_matrix(y, p, labels=labels, **kw)
        tn, fp, fn_, tp = cm[:, 0, 0], cm[:, 0, 1], cm[:, 1, 0], cm[:, 1, 1]
        if metric == "selection_rate":
            return float((tp + fp)[-1] / w.sum())
        rates = [f / (f + t) if f + t else np.nan for f, t in zip(fp, tn, strict=True)]
        if binary_task:
            return float(rates[-1])
        present = (tp + fp + fn_) > 0
        return float(np.nanmean(np.array(rates)[present]))
    order = np.argsort(
        np.asarray(preds.classes)
    )  # scikit-learn wants the columns in sorted label order
    proba = preds.proba[:, order]  # type: ignore[index]
    if metric == "log_loss":
        return float(skm.log_loss(y, proba, labels=labels, **kw))
    return float(skm.roc_auc_score(y == pos, proba[:, -1], **kw))


@pytest.mark.parametrize(
    ("make", "names"),
    [(binary, CLASSIFICATION), (multiclass, MACRO), (regression, REGRESSION)],
    ids=["binary", "multiclass", "regression"],
)
def test_weighted_sums_equal_sklearn_with_the_resample_counts_as_weights(
    make: Any, names: list[str]
) -> None:
    preds = make()
    all_counts = resample_counts(len(preds.y_true), 12)
    found = score_weighted(names, preds, np.array(all_counts))
    for row, counts in enumerate(all_counts):
        for name in names:
            expected = sklearn_weighted(name, preds, counts)
            assert found[name][row] == pytest.approx(expected, rel=1e-9, abs=1e-12), name
    if make is multiclass:
        # The rare class really was missing from some resamples (the macro average skips it).
        assert any(c[0] == 0 for c in all_counts) and any(c[0] > 0 for c in all_counts)


@pytest.mark.parametrize(
    ("make", "names"),
    [(binary, CLASSIFICATION), (multiclass, MACRO), (regression, REGRESSION)],
    ids=["binary", "multiclass", "regression"],
)
def test_a_count_of_one_everywhere_is_score_and_a_zero_one_mask_is_a_slice(
    make: Any, names: list[str]
) -> None:
    preds = make()
    n = len(preds.y_true)
    ones = score_weighted(names, preds, np.ones(n))
    rows = np.random.default_rng(5).random(n) < 0.4
    on_slice = score_weighted(names, preds, rows.astype(float))
    for name in names:
        assert ones[name][0] == pytest.approx(score(name, preds), rel=1e-9), name
        assert on_slice[name][0] == pytest.approx(score(name, preds, rows), rel=1e-9), name
        assert score(name, preds, rows) != pytest.approx(score(name, preds), rel=1e-6), name


def test_labels_positive_class_and_column_order() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes", "no"])
    pred = np.array(["no", "yes", "no", "no", "yes", "yes"])
    p_yes = np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.6])
    # The positive class defaults to the greater label: "yes".
    preds = Predictions(y, pred, np.column_stack([p_yes, 1 - p_yes]), ("yes", "no"))
    assert score("recall", preds) == pytest.approx(2 / 3)
    # One (yes, no) pair of nine is ordered wrong: 0.4 below 0.6.
    assert score("roc_auc", preds) == pytest.approx(8 / 9)
    assert score("log_loss", preds) == pytest.approx(skm.log_loss(y == "yes", p_yes))
    flipped = Predictions(y, pred, preds.proba, preds.classes, pos_label="no")
    assert score("recall", flipped) == pytest.approx(2 / 3)
    assert score("precision", flipped) == pytest.approx(
        skm.precision_score(y, pred, pos_label="no")
    )
    assert score("roc_auc", flipped) == pytest.approx(8 / 9)
    # Text in object arrays (how pandas holds it) is the same text.
    as_objects = Predictions(y.astype(object), pred.astype(object), preds.proba, preds.classes)
    assert score("roc_auc", as_objects) == score("roc_auc", preds)
    one_column = Predictions(y, pred, p_yes, None)
    assert score("roc_auc", one_column) == score("roc_auc", preds)
    assert score_weighted(["roc_auc"], one_column, np.ones(6))["roc_auc"][0] == pytest.approx(8 / 9)


@pytest.mark.parametrize(
    ("y", "task"),
    [
        ([True, False, True], "classification"),
        (["a", "b", "a"], "classification"),
        (np.array(["x", 1], dtype=object), "classification"),
        ([0, 1, 2, 1, 0], "classification"),
        ([0.0, 1.0, 1.0], "classification"),
        (np.array([3, 1, 2], dtype=object), "classification"),
        (list(range(21)), "regression"),
        ([0.5, 1.0, 2.0], "regression"),
        (np.array([0.5, 2.5], dtype=object), "regression"),
    ],
)
def test_infer_task(y: Any, task: str) -> None:
    assert infer_task(y) == task


def test_a_fixed_seed_gives_the_same_intervals_and_another_seed_others() -> None:
    cand = binary(500, seed=1)
    assert cand.proba is not None
    champ = Predictions(cand.y_true, np.roll(cand.y_pred, 1), cand.proba[::-1], (0, 1))
    first = bootstrap(CLASSIFICATION, cand, champ, resamples=200, seed=3)
    assert first == bootstrap(CLASSIFICATION, cand, champ, resamples=200, seed=3)
    other = bootstrap(CLASSIFICATION, cand, champ, resamples=200, seed=4)
    assert first["accuracy"].delta != other["accuracy"].delta


def test_the_same_rows_for_both_models_in_each_replicate() -> None:
    preds = binary(400)
    alone = bootstrap(["accuracy", "roc_auc"], preds, None, resamples=300)
    twice = bootstrap(["accuracy", "roc_auc"], preds, preds, resamples=300)
    # Unpaired resamples would give a delta spread around 0, not exactly 0.
    assert twice["accuracy"].delta == (0.0, 0.0) and twice["roc_auc"].delta == (0.0, 0.0)
    assert alone["accuracy"] == Interval(twice["accuracy"].candidate, None, None, None)
    assert twice["accuracy"].champion == twice["accuracy"].candidate


def test_chunks_of_replicates_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    preds = binary(400)
    whole = bootstrap(["f1"], preds, None, resamples=500)["f1"].candidate
    # 7 replicates per chunk: 71 full chunks and a short one.
    monkeypatch.setattr(bootstrap_sums, "_CHUNK_CELLS", 7 * 400)
    chunked = bootstrap(["f1"], preds, preds, resamples=500)["f1"]
    assert chunked.delta == (0.0, 0.0)
    assert chunked.candidate == pytest.approx(whole, abs=0.02)


def noisy_pair(n: int, candidate_right: float, champion_right: float) -> tuple[Any, Any]:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, n)
    draw = rng.random(n)
    cand = np.where(draw < candidate_right, y, 1 - y)
    champ = np.where(draw < champion_right, y, 1 - y)
    return Predictions(y, cand), Predictions(y, champ)


def test_a_difference_within_the_noise_is_not_a_difference() -> None:
    cand, _ = noisy_pair(2_000, 0.85, 0.85)
    y, pred = cand.y_true, cand.y_pred.copy()
    rng = np.random.default_rng(12)
    # The champion differs on 7 random positive rows: worse on 5, better on 2.
    worse = rng.choice(np.flatnonzero((y == 1) & (pred == 1)), 5, replace=False)
    better = rng.choice(np.flatnonzero((y == 1) & (pred == 0)), 2, replace=False)
    pred[worse], pred[better] = 0, 1
    champ = Predictions(y, pred)
    got = bootstrap(["accuracy", "f1", "recall"], cand, champ, resamples=1000)
    for name, interval in got.items():
        assert score(name, cand) > score(name, champ), name
        assert interval.delta is not None
        low, high = interval.delta
        assert low < 0 < high, name
        # Paired: the delta is far narrower than either model's own interval.
        assert high - low < (interval.candidate[1] - interval.candidate[0]) / 3, name


def test_a_clearly_better_model_has_its_whole_interval_above_zero() -> None:
    cand, champ = noisy_pair(2_000, 0.95, 0.80)
    got = bootstrap(["accuracy", "f1"], cand, champ, resamples=1000)
    assert got["accuracy"].candidate[0] > 0.93 and got["accuracy"].champion[1] < 0.84  # type: ignore[index]
    for interval in got.values():
        assert interval.delta is not None and interval.delta[0] > 0.1


def test_lower_is_better_metrics_move_the_other_way() -> None:
    rng = np.random.default_rng(21)
    y = rng.normal(0, 10, 1_000)
    cand = Predictions(y, y + rng.normal(0, 1, 1_000), task="regression")
    champ = Predictions(y, y + rng.normal(0, 3, 1_000), task="regression")
    got = bootstrap(["rmse", "mae", "r2"], cand, champ, resamples=500)
    assert not METRICS["rmse"].higher_is_better and METRICS["r2"].higher_is_better
    assert got["rmse"].delta is not None and got["rmse"].delta[1] < 0
    assert got["mae"].delta is not None and got["mae"].delta[1] < 0
    assert got["r2"].delta is not None and got["r2"].delta[0] > 0


def test_relative_delta_is_the_delta_over_the_champion() -> None:
    rng = np.random.default_rng(22)
    y = rng.normal(0, 10, 1_000)
    cand_pred, champ_pred = y + rng.normal(0, 1, 1_000), y + rng.normal(0, 2, 1_000)

    def intervals(scale: float) -> Interval:
        return bootstrap(
            ["mae"],
            Predictions(y * scale, cand_pred * scale, task="regression"),
            Predictions(y * scale, champ_pred * scale, task="regression"),
            resamples=400,
        )["mae"]

    unit, tenfold = intervals(1.0), intervals(10.0)
    champion_mae = score("mae", Predictions(y, champ_pred, task="regression"))
    assert unit.delta is not None and unit.relative_delta is not None
    assert np.allclose(np.array(unit.relative_delta), np.array(unit.delta) / champion_mae, rtol=0.1)
    # Delta carries the metric's units; the relative delta has none.
    assert np.allclose(tenfold.delta, np.array(unit.delta) * 10)  # type: ignore[arg-type]
    assert np.allclose(tenfold.relative_delta, unit.relative_delta)  # type: ignore[arg-type]


def test_replicates_without_positives_drop_out_and_too_few_left_give_nan() -> None:
    y = np.zeros(200, dtype=int)
    y[0] = 1  # one positive row: about 37% of resamples have none
    pred = y.copy()
    got = bootstrap(["recall"], Predictions(y, pred), None, resamples=300)["recall"]
    assert got.candidate == (1.0, 1.0)
    none = bootstrap(["recall"], Predictions(np.zeros(200, dtype=int), pred * 0), None)
    assert all(math.isnan(v) for v in none["recall"].candidate)
    # The rule itself: 4 of 10 defined is too few; 5 of 10 is enough.
    too_few = metrics._percentiles(np.array([np.nan] * 6 + [1.0] * 4), 0.05)
    assert all(math.isnan(v) for v in too_few)
    half = np.array([np.nan] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0])
    assert metrics._percentiles(half, 0.5) == (2.0, 4.0)


def test_multiclass_roc_auc_and_selection_rate_are_refused() -> None:
    preds = multiclass()
    for name in ("roc_auc", "selection_rate"):
        with pytest.raises(ValueError, match=f"{name} needs a binary task"):
            score(name, preds)
        with pytest.raises(ValueError, match=f"{name} needs a binary task"):
            bootstrap([name], preds, None, resamples=10)


@pytest.mark.parametrize(
    ("metric", "preds", "message"),
    [
        ("acuracy", binary(), "unknown metric 'acuracy': the gate computes accuracy, f1,"),
        (
            "rmse",
            binary(),
            "rmse is a regression metric, but the (model|candidate) is scored as class",
        ),
        ("accuracy", regression(), "accuracy is a classification metric"),
        ("roc_auc", given([0, 1], [0, 1]), "roc_auc needs predicted probabilities"),
        ("log_loss", given([0, 1], [0, 1]), "log_loss needs predicted probabilities"),
        (
            "f1",
            given([0, 1, 1], [0, 1]),
            "f1: the (model|candidate) has 2 predictions for 3 true",
        ),
        (
            "roc_auc",
            given([0, 1], [0, 1], [[0.5, 0.5]], (0, 1)),
            "roc_auc: the (model|candidate) has 1 rows of prob",
        ),
        ("log_loss", given([0, 1], [0, 1], [[0.2, 1.8]] * 2, (0, 1)), "log_loss: prob"),
        ("mae", given([1.0, math.nan], [1.0, 2.0], task="regression"), "mae: the true"),
        ("recall", given([0, 1], [0, 1], pos_label=2), "recall: pos_label=2 is not one"),
        ("f1", given([0, 1, 2], [0, 1, 2], pos_label=2), "f1: pos_label=2 applies to a b"),
        ("f1", given(["a", "b"], [0, 1]), "f1: true labels, predicted labels and classes"),
        ("recall", given(["a", "a"], ["a", "a"]), "recall: every row has the label 'a'"),
    ],
)
def test_bad_input_names_the_metric(metric: str, preds: Predictions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(metric, preds)
    with pytest.raises(ValueError, match=message):
        bootstrap([metric], preds, None, resamples=10)


def test_candidate_and_champion_must_share_the_rows() -> None:
    cand = binary(100)
    other = Predictions(np.roll(cand.y_true, 1), cand.y_pred, cand.proba, (0, 1))
    with pytest.raises(ValueError, match="accuracy: the candidate and the champion must be"):
        bootstrap(["accuracy"], cand, other, resamples=10)
    no_proba = Predictions(cand.y_true, cand.y_pred)
    with pytest.raises(ValueError, match="roc_auc needs predicted probabilities and the champ"):
        bootstrap(["roc_auc"], cand, no_proba, resamples=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 0}, "resamples: 0 is not a positive whole number"),
        ({"confidence": 1.5}, "confidence: 1.5 must lie between 0 and 1"),
    ],
)
def test_bad_bootstrap_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap(["accuracy"], binary(50), None, **kwargs)


def test_a_slice_mask_must_select_rows() -> None:
    preds = binary(50)
    with pytest.raises(ValueError, match="accuracy: the rows mask selects no rows"):
        score("accuracy", preds, np.zeros(50, dtype=bool))
    with pytest.raises(ValueError, match="accuracy: rows must be a boolean mask"):
        score("accuracy", preds, np.arange(50))  # type: ignore[arg-type]


ALL_POSITIVE = "every row has the positive label 1 (no negative row)"


@pytest.mark.parametrize(
    ("y", "pred", "metric", "why"),
    [
        ([0, 0, 0, 0], [0, 1, 0, 1], "f1", "no row has the positive label 1"),
        ([0, 0, 0, 0], [0, 1, 0, 1], "recall", "no row has the positive label 1"),
        ([0, 0, 0, 0], [0, 1, 0, 1], "roc_auc", "no row has the positive label 1"),
        (["no", "no", "no"], ["no", "yes", "no"], "f1", "no row has the positive label 'yes'"),
        ([1, 1, 1], [1, 0, 1], "false_positive_rate", ALL_POSITIVE),
        ([1, 1, 1], [1, 0, 1], "roc_auc", ALL_POSITIVE),
        ([0, 0, 0, 0], [0, 1, 0, 1], "accuracy", None),  # defined without positives
        ([0, 0, 0, 0], [0, 1, 0, 1], "precision", None),  # judged on the predicted positives
        ([0, 1, 0, 1], [0, 1, 1, 1], "f1", None),
        ([0, 1, 2, 1], [0, 1, 1, 1], "recall", None),  # multiclass: macro over those present
    ],
)
def test_a_metric_that_cannot_judge_the_rows_says_why(
    y: list[Any], pred: list[Any], metric: str, why: str | None
) -> None:
    proba = np.full((len(y), 2), 0.5) if metric == "roc_auc" else None
    preds = given(y, pred, proba, (0, 1) if proba is not None else None)
    assert metrics.cannot_judge(metric, [preds]) == why
    if metric == "f1" and why and isinstance(y[0], int):
        assert score("f1", preds) == 0.0  # what the gate used to judge as "0 vs 0: pass"


def test_a_slice_without_positives_cannot_be_judged_where_the_whole_set_can() -> None:
    preds = given([0, 1, 0, 0], [0, 1, 1, 0])
    assert metrics.cannot_judge("recall", [preds]) is None
    assert metrics.cannot_judge("recall", [preds], np.array([True, False, True, True])) == (
        "no row has the positive label 1"
    )


def test_more_resamples_with_the_same_seed_only_add_replicates() -> None:
    """The gate doubles --resamples near a threshold: the first replicates stay the same."""
    preds = binary()
    labels = metrics.resolve_labels([preds], ["accuracy"])

    def replicates(resamples: int) -> np.ndarray:
        evaluator = bootstrap_sums.Evaluator(preds, ["accuracy"], labels)
        return bootstrap_sums.score_replicates([evaluator], resamples, seed=5)[0]["accuracy"]

    assert np.array_equal(replicates(200), replicates(400)[:200])


def test_the_resampling_error_of_an_end_shrinks_with_more_resamples() -> None:
    candidate, champion = noisy_pair(2000, 0.80, 0.79)
    errors = [
        bootstrap(["accuracy"], candidate, champion, resamples=b, seed=3)["accuracy"].delta_error
        for b in (200, 3200)
    ]
    assert errors[0] is not None and errors[1] is not None
    assert all(e > 0 for e in errors[0]) and errors[1][0] < errors[0][0] / 2
