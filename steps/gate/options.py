"""gate's options: the section every face maps, the resolved config and the checks across
options. steps/gate/plan.py builds the plan from a GateConfig.

The rule options (metrics, slices, schema, quality, drift) are mappings in mlsteps.yaml; from a
flag, an environment variable or an action input they are the same mapping as YAML text, e.g.
``--metrics '{accuracy: {min: 0.9, min-delta: -0.01}}'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.checks.thresholds import (
    Delta,
    MetricThreshold,
    load_mapping,
    load_value,
    parse_margin,
    parse_metric_thresholds,
)
from steps.core.config_file import resolve
from steps.core.errors import ConfigError
from steps.core.options import MLFLOW, MODEL, Option, Output, Section
from steps.core.runtime import Runtime
from steps.gate import HELP

CHECK_KINDS = ("metric", "change", "slice", "gap", "schema", "quality", "drift")
RULES_SCHEMA: Mapping[str, Any] = {"type": ["object", "string", "boolean", "null"]}


@dataclass(frozen=True, kw_only=True)
class SliceRules:
    columns: tuple[str, ...]
    min_size: int
    metrics: Mapping[str, MetricThreshold]  # value thresholds each slice must meet
    max_gap: Mapping[str, float]  # metric → largest allowed best-minus-worst slice difference


_SLICE_KEYS = ("columns", "min-size", "metrics", "max-gap")


def parse_slices(raw: Any) -> SliceRules | None:
    """``{columns: [group], min-size: 100, metrics: {recall: {min: 0.7}},
    max-gap: {true_positive_rate: 0.1}}``."""
    found = load_mapping(raw, "{columns, min-size, metrics, max-gap}")
    if not found:
        return None
    unknown = sorted(set(found) - set(_SLICE_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(_SLICE_KEYS)})")
    columns = found.get("columns")
    if isinstance(columns, str):
        columns = [columns]
    if not columns or not isinstance(columns, list):
        raise ValueError("columns: the list of columns to slice by, e.g. [group]")
    min_size = found.get("min-size", 30)
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"min-size: a positive whole number of rows, got {min_size!r}")
    metrics = parse_metric_thresholds(found.get("metrics"))
    if any(rule.min_delta or rule.max_delta for rule in metrics.values()):
        raise ValueError("metrics: per-slice thresholds take min and max (no deltas)")
    gaps = load_mapping(found.get("max-gap"), "max-gap: {metric: largest difference}")
    for name, gap in gaps.items():
        if isinstance(gap, bool) or not isinstance(gap, int | float) or gap < 0:
            raise ValueError(f"max-gap.{name}: a number ≥ 0, got {gap!r}")
    if not metrics and not gaps:
        raise ValueError("slices need metrics (per-slice thresholds) or max-gap, or both")
    return SliceRules(
        columns=tuple(map(str, columns)),
        min_size=min_size,
        metrics=metrics,
        max_gap={k: float(v) for k, v in gaps.items()},
    )


def _rules(parse_name: str) -> Any:
    """data_rules' parser, imported when a value is parsed; false (or empty) turns the checks
    off, true means their defaults."""

    def parse(raw: Any) -> Any:
        from steps.checks import data_rules

        value = load_value(raw)
        if value is None or value is False:
            return None
        return getattr(data_rules, parse_name)({} if value is True else value)

    return parse


def parse_warn_only(text: str) -> str:
    if not text.strip():
        raise ValueError("a check kind (" + ", ".join(CHECK_KINDS) + "), a check name, or all")
    return text.strip()


SECTION = Section(
    "gate",
    HELP,
    (
        Option(
            name="model-uri",
            help="The candidate: `models:/NAME/VERSION` (e.g. package's `model-version` "
            "output), `models:/NAME@ALIAS`, `runs:/RUN_ID/PATH` or "
            "`models:/MODEL_ID` (train's `model-uri` output).",
        ),
        Option(
            name="champion-alias",
            default="champion",
            help="Alias of the registered model (--name) that marks the version to "
            "compare against. `none`: compare with nothing (the first model; value "
            "thresholds only).",
        ),
        Option(
            name="metrics",
            kind="structured",
            parse=parse_metric_thresholds,
            schema=RULES_SCHEMA,
            metavar="YAML",
            help="Thresholds per metric, e.g. `{accuracy: {min: 0.9, min-delta: -0.01}, "
            "rmse: {max: 3, max-delta: '2%'}}`. `min`/`max` judge the candidate's "
            "value; `min-delta`/`max-delta` judge candidate − champion, absolute or "
            "relative (`'2%'`); `better: higher|lower` for a metric mlsteps does not"
            " know. No thresholds: with --data, the candidate is rejected only when "
            "worse than the champion beyond the sampling noise.",
        ),
        Option(
            name="data",
            kind="path",
            metavar="PATH",
            help="Evaluation data (CSV or Parquet) with the --target column. Both models "
            "are scored on the same rows, with bootstrap intervals; the data checks "
            "run on it. Unset: the metrics the runs logged are compared.",
        ),
        Option(name="target", help="The label column of --data."),
        Option(
            name="task",
            kind="choice",
            choices=("auto", "classification", "regression"),
            default="auto",
            help="What the model predicts. `auto`: classification for labels that are "
            "text, booleans or a few whole numbers, else regression.",
        ),
        Option(
            name="training-data",
            kind="path",
            metavar="PATH",
            help="The data the model was trained on (CSV or Parquet). Its schema is "
            "inferred and stored with the model (mlsteps/schema.json in the "
            "candidate's run), and it is the reference for drift.",
        ),
        Option(
            name="slices",
            kind="structured",
            parse=parse_slices,
            schema=RULES_SCHEMA,
            metavar="YAML",
            help="Per-group checks on --data, e.g. `{columns: [group], min-size: 30, "
            "metrics: {recall: {min: 0.7}}, max-gap: {true_positive_rate: 0.1}}`. "
            "Slices smaller than `min-size` are reported, not judged.",
        ),
        Option(
            name="schema",
            kind="structured",
            jenkins_form="RULES_OR_FALSE",  # `false` turns it off
            parse=_rules("parse_schema_rules"),
            schema=RULES_SCHEMA,
            default_text="true when a schema is known",
            metavar="YAML",
            help="Schema check of --data against the training data's schema (inferred "
            "from --training-data, else the one stored with the candidate), e.g. "
            "`{range-tolerance: 0.01, null-tolerance: 0.05, unseen-tolerance: "
            "0.01}`; `false` turns it off.",
        ),
        Option(
            name="quality",
            kind="structured",
            parse=_rules("parse_quality"),
            schema=RULES_SCHEMA,
            metavar="YAML",
            help="Quality rules on --data, e.g. `{min-rows: 1000, max-null-rate: 0.05, "
            "columns: {age: {min: 0, max: 120, not-null: true}, id: {unique: true}, "
            "country: {allowed: [DE, FR]}}}`.",
        ),
        Option(
            name="drift",
            kind="structured",
            jenkins_form="RULES_OR_FALSE",  # `false` turns it off
            parse=_rules("parse_drift"),
            schema=RULES_SCHEMA,
            default_text="on with --training-data",
            metavar="YAML",
            help="Drift from --training-data to --data per feature. E.g. `{psi: 0.2, ks: "
            "0.1, bins: 10, features: [...], per-feature: {age: {psi: 0.3}}}`; "
            "`false` turns it off.",
        ),
        Option(
            name="resamples",
            kind="int",
            default=1000,
            metavar="N",
            limits=(0, 1_000_000),
            help="Bootstrap resamples for the intervals (at least 100). `0`: no "
            "intervals; value and change thresholds are judged on the point values, "
            "and metrics without a threshold are shown, not judged.",
        ),
        Option(
            name="confidence",
            kind="float",
            default=0.95,
            metavar="LEVEL",
            help="Level of the intervals: at least 0.5, below 1 (`0.95`: 95% intervals).",
        ),
        Option(
            name="seed",
            kind="int",
            default_text="derived from the data and the models",
            metavar="N",
            limits=(0, 2**32 - 1),  # what numpy's generators take
            help="Seed of the resampling. Unset: derived from the digests of --data and "
            "of both models' files, so the same data and models give the same report"
            " and no seed can be shopped for; a given seed is reported as given.",
        ),
        Option(
            name="default-margin",
            parse=parse_margin,
            metavar="DELTA",
            help="How much worse than the champion a metric without a threshold may be. "
            "Absolute (`0.01`) or relative (`'1%'`): its whole interval must stay "
            "within it. Unset: such a metric rejects only a candidate worse beyond "
            "the sampling noise (a somewhat worse one can pass); the plan and the "
            "report say so.",
        ),
        Option(
            name="warn-only",
            kind="list",
            parse=parse_warn_only,
            metavar="KIND|NAME",
            help="Checks shown but not enforced: a kind (`metric`, `change`, `slice`, "
            "`gap`, `schema`, `quality`, `drift`), a check's name (e.g. `age "
            "(PSI)`), or `all`.",
        ),
        Option(
            name="report-dir",
            kind="path",
            default="mlsteps-gate",
            metavar="PATH",
            help="Where report.md, report.json and report.png are written (Jenkins "
            "archives it; on GitHub, upload it with actions/upload-artifact to keep "
            "it).",
        ),
        Option(
            name="log-report",
            kind="bool",
            default=True,
            metavar="true|false",
            help="Log the report to the candidate's MLflow run. The run and the model "
            "version are tagged with the verdict (promote reads it).",
        ),
    ),
)

OUTPUTS = (
    Output(
        "decision",
        "`pass` or `rejected` (also set when the model was rejected and the step failed).",
    ),
    Output(
        "candidate-version",
        "The candidate's model version (empty for a model that is not registered).",
    ),
    Output(
        "champion-version",
        "The champion's version it was compared against (empty when there was none).",
    ),
    Output("report", "Path of the markdown report (report.json and report.png are beside it)."),
    Output(
        "report-digest",
        "Digest of the report, `sha256:…` (promote records it on the promoted version).",
    ),
    Output("failed", "How many enforced checks failed (`0` when the candidate passed)."),
)


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    model_uri: str
    champion_alias: str | None  # None: compare with nothing
    metrics: Mapping[str, MetricThreshold]
    data: str | None
    target: str | None
    task: str
    training_data: str | None
    slices: SliceRules | None
    schema: Any  # data_rules.SchemaRules | None | "auto"
    quality: Any  # data_rules.QualityRules | None
    drift: Any  # data_rules.DriftRules | None
    resamples: int
    confidence: float
    seed: int | None  # None: derived from the digests of the data and the models
    default_margin: Delta | None
    warn_only: tuple[str, ...]
    report_dir: str
    log_report: bool
    model_name: str | None
    tracking_uri: str | None

    def enforced(self, kind: str, name: str) -> bool:
        return not ({"all", kind, name} & set(self.warn_only))


def load_config(runtime: Runtime, flags: Mapping[str, Any]) -> GateConfig:
    cfg = runtime.config_file()
    given = resolve(SECTION, flags, cfg, runtime.environ)
    values = {k: v.value for k, v in given.items()}
    tracking = {k: v.value for k, v in resolve(MLFLOW, flags, cfg, runtime.environ).items()}
    model = {k: v.value for k, v in resolve(MODEL, flags, cfg, runtime.environ).items()}
    alias = (values["champion-alias"] or "").strip()
    # schema and drift are on by default when their inputs are there; "set" tells an explicit
    # setting (even false) from the default.
    schema_set = given["schema"].source != "default"
    drift_set = given["drift"].source != "default"
    config = GateConfig(
        model_uri=values["model-uri"] or "",
        champion_alias=None if alias.lower() in ("", "none") else alias,
        metrics=values["metrics"] or {},
        data=values["data"],
        target=values["target"],
        task=values["task"],
        training_data=values["training-data"],
        slices=values["slices"],
        schema=values["schema"] if schema_set else "auto",
        quality=values["quality"],
        drift=values["drift"] if drift_set else ("auto" if values["training-data"] else None),
        resamples=values["resamples"],
        confidence=values["confidence"],
        seed=values["seed"],
        default_margin=values["default-margin"],
        warn_only=tuple(values["warn-only"] or ()),
        report_dir=values["report-dir"] or str(Path("mlsteps-gate").resolve()),
        log_report=values["log-report"],
        model_name=model["name"],
        tracking_uri=tracking["tracking-uri"],
    )
    _check(config)
    return config


def _check(config: GateConfig) -> None:
    """Cross-option checks: each names the option and the fix."""
    if not config.model_uri:
        raise ConfigError(
            "gate needs a candidate: give --model-uri (env MLSTEPS_GATE_MODEL_URI, or "
            "gate.model-uri in mlsteps.yaml), e.g. models:/my-model/3, runs:/RUN_ID/model, or "
            "the model-uri output of the train step."
        )
    if not config.model_uri.startswith(("models:/", "runs:/")):
        raise ConfigError(
            f"--model-uri {config.model_uri}: gate judges a model MLflow tracks (its runs hold "
            "the metrics and receive the report). Give models:/NAME/VERSION, models:/NAME@ALIAS, "
            "runs:/RUN_ID/PATH or models:/MODEL_ID."
        )
    if not config.tracking_uri:
        raise ConfigError(
            "gate reads the candidate and the champion from MLflow: set --tracking-uri (env "
            "MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI) to the tracking server's URL."
        )
    if config.champion_alias and not config.model_name:
        raise ConfigError(
            f"--champion-alias {config.champion_alias}: finding the champion needs the "
            "registered model's name: give --name (env MLSTEPS_MODEL_NAME, or model.name in "
            "mlsteps.yaml), or --champion-alias none to judge the candidate on its own."
        )
    if config.data and not config.target:
        raise ConfigError(
            f"--data {config.data}: scoring the models needs the label column: give --target "
            "(env MLSTEPS_GATE_TARGET, or gate.target in mlsteps.yaml)."
        )
    for option, path in (("--data", config.data), ("--training-data", config.training_data)):
        if path is None:
            continue
        if not Path(path).is_file():
            raise ConfigError(f"{option} {path}: no such file. Give a CSV or Parquet file.")
        if Path(path).suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise ConfigError(
                f"{option} {path}: not a .csv or .parquet file. Save the data set as CSV or "
                "Parquet."
            )
    needs_data = [
        name
        for name, value in (("--slices", config.slices), ("--quality", config.quality))
        if value is not None
    ]
    if config.drift not in (None, "auto") and not config.training_data:
        needs_data.append("--drift (and --training-data, its reference)")
    if needs_data and not config.data:
        raise ConfigError(
            f"{', '.join(needs_data)} check the evaluation data: give --data PATH (CSV or "
            "Parquet), or remove them."
        )
    if config.drift not in (None, "auto") and not config.training_data:
        raise ConfigError(
            "--drift compares --data with the training data: give --training-data PATH, or "
            "drift: false."
        )
    report_dir = Path(config.report_dir)
    blocker = next((p for p in (report_dir, *report_dir.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ConfigError(
            f"--report-dir {config.report_dir}: {blocker} is a file, not a directory. Give a "
            "directory (it is created when missing)."
        )
    if config.resamples < 0 or 0 < config.resamples < 100:
        raise ConfigError(
            f"--resamples {config.resamples}: intervals need at least 100 resamples (1000 is "
            "the default); 0 turns them off."
        )
    if not 0.5 <= config.confidence < 1:
        raise ConfigError(
            f"--confidence {config.confidence}: a level of at least 0.5 and below 1, e.g. 0.95."
        )
