"""Applying gate's plan: each action's handler, in the order the plan lists them.

Everything before "gate.report" only reads; the report files and the MLflow writes come last,
after every input was found good, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from steps.checks.verdict import (
    CHAMPION_TAG,
    NO_CHAMPION,
    REPORT_ARTIFACT_DIR,
    REPORT_DIGEST_TAG,
    REPORT_URI_TAG,
    VERDICT_TAG,
    Check,
    verdict,
)
from steps.core.errors import ConfigError, GateRejected, StepFailed
from steps.core.plan import Action, Plan
from steps.core.runtime import Runtime, StepResult
from steps.gate import lookup
from steps.gate.lookup import describe
from steps.gate.options import CHECK_KINDS, GateConfig
from steps.gate.plan import SCHEMA_ARTIFACT
from steps.gate.state import GateState
from steps.services.mlflow.model_source import Artifacts, ModelRef
from steps.services.mlflow.tracking import MlflowApiError, RestTracking


def run(runtime: Runtime, config: GateConfig, plan: Plan) -> StepResult:
    from steps.gate import scoring as gate_scoring

    face = runtime.get_face()
    assert config.tracking_uri
    state = GateState(RestTracking(config.tracking_uri), Artifacts(config.tracking_uri))

    def resolve(action: Action) -> None:
        state.candidate, state.champion, notes = lookup.find(config, state.rest)
        state.notes += notes
        face.info(f"candidate: {describe(state.candidate)}")
        face.info(f"champion: {describe(state.champion) if state.champion else 'none'}")

    def load_data(action: Action) -> None:
        _load_data(config, state)

    def schema(action: Action) -> None:
        from steps.checks import data, data_rules

        found = _schema(config, state)
        if found is None:
            return
        rules = config.schema if config.schema != "auto" else data_rules.SchemaRules()
        state.checks += data.check_schema(found, state.data, rules)

    def quality(action: Action) -> None:
        from steps.checks import data

        state.checks += data.check_quality(config.quality, state.data)

    def drift(action: Action) -> None:
        from steps.checks import data_rules
        from steps.checks import drift as drift_checks

        rules = config.drift if config.drift != "auto" else data_rules.parse_drift({})
        assert rules is not None
        face.info(f"measuring drift of {len(state.data.columns) - 1} features")
        state.checks += drift_checks.check_drift(
            state.training, state.data, rules, ignore=[config.target] if config.target else []
        )

    def evaluate(action: Action) -> None:
        if config.data:
            gate_scoring.evaluate_on_data(config, state, face)
        else:
            gate_scoring.compare_logged(config, state)

    def slices(action: Action) -> None:
        gate_scoring.judge_slices(config, state)

    def report(action: Action) -> None:
        from steps.checks import report as reports

        _check_warn_only(config, state, face)
        state.checks = [_apply_warn_only(config, c) for c in state.checks]
        if not state.checks:
            face.warning(
                f"no check ran: the gate passes on nothing. {_no_check_fix(config, state)}"
            )
        state.report = _report(config, state)
        state.paths = reports.write(state.report, Path(config.report_dir))
        if state.metrics and "png" not in state.paths:
            face.warning("no report.png: matplotlib is not installed (pip install 'mlsteps[gate]')")
        face.info(f"report: {', '.join(str(p) for p in state.paths.values())}")

    def log_report(action: Action) -> None:
        _log_report(config, state)

    applied = plan.apply(
        {
            "gate.resolve": resolve,
            "gate.load-data": load_data,
            "gate.schema": schema,
            "gate.quality": quality,
            "gate.drift": drift,
            "gate.evaluate": evaluate,
            "gate.slices": slices,
            "gate.report": report,
            "mlflow.log-report": log_report,
        }
    )
    return _result(runtime, state, applied)


def read_table(path: str) -> Any:
    import pandas as pd

    if Path(path).suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def _file_digest(path: str) -> str:
    import hashlib

    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def _load_data(config: GateConfig, state: GateState) -> None:
    if config.data:
        state.data = _read(config.data, "--data")
        state.data_digest = _file_digest(config.data)
        if config.target not in state.data.columns:
            raise ConfigError(
                f"--target {config.target}: no such column in --data {config.data} (it has "
                f"{_columns(state.data)}). Name the label column."
            )
        unlabelled = int(state.data[config.target].isna().sum())
        if unlabelled:
            raise ConfigError(
                f"--target {config.target}: {unlabelled} of {len(state.data)} rows of --data "
                f"{config.data} have no label. Drop those rows (or fill their labels): a model "
                "cannot be scored against a missing answer."
            )
        for column in config.slices.columns if config.slices else ():
            if column not in state.data.columns:
                raise ConfigError(
                    f"--slices columns: no column '{column}' in --data {config.data} (it has "
                    f"{_columns(state.data)}). Name a column of the evaluation data."
                )
    if config.training_data:
        state.training = _read(config.training_data, "--training-data")


def _read(path: str, option: str) -> Any:
    try:
        table = read_table(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for a bad file
        raise ConfigError(
            f"{option} {path}: cannot be read ({type(exc).__name__}: {str(exc)[:200]}). Give a "
            "CSV file with a header row, or a Parquet file."
        ) from None
    if len(table) == 0:
        raise ConfigError(f"{option} {path}: no rows. Give a data set with rows.")
    return table


def _columns(table: Any, limit: int = 12) -> str:
    names = [str(c) for c in table.columns]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _schema(config: GateConfig, state: GateState) -> dict[str, Any] | None:
    from steps.checks import data

    if state.training is not None:
        state.inferred_schema = data.infer_schema(state.training)
        return state.inferred_schema
    assert state.candidate and state.candidate.run_id
    run = state.rest._call("GET", "runs/get", params={"run_id": state.candidate.run_id})["run"]
    stored = state.artifacts.read(run["info"]["artifact_uri"], SCHEMA_ARTIFACT)
    if stored is None:
        if config.schema == "auto":  # not asked for: nothing to say
            return None
        state.notes.append(
            "No schema checked: the candidate's run stores none and no --training-data was "
            "given (a gate with --training-data stores it)."
        )
        return None
    found: dict[str, Any] = json.loads(stored)
    return found


def _no_check_fix(config: GateConfig, state: GateState) -> str:
    if config.data and not config.resamples and state.champion is not None:
        return (
            "With --resamples 0 there are no intervals, so metrics without a threshold are "
            "not judged: give --metrics thresholds, or --resamples 1000 for the default check."
        )
    if config.data:
        return "Give --metrics thresholds (no champion to compare with)."
    return (
        "Give --metrics thresholds, or --data and --target so the candidate is compared with "
        "the champion on the same rows."
    )


def _check_warn_only(config: GateConfig, state: GateState, face: Any) -> None:
    """A --warn-only entry that names no check is most likely a typo, and the check it meant
    is then enforced: say so. A warning, not an error: a slice or a feature can be absent from
    one run's data and present in the next."""
    names = {c.name for c in state.checks}
    for entry in config.warn_only:
        if entry != "all" and entry not in CHECK_KINDS and entry not in names:
            face.warning(
                f"--warn-only {entry}: no check of that kind or name ran (kinds: "
                f"{', '.join(CHECK_KINDS)}; checks: {', '.join(sorted(names)) or 'none'}); it "
                "has no effect."
            )


def _apply_warn_only(config: GateConfig, check: Check) -> Check:
    if check.enforced and not config.enforced(check.kind, check.name):
        return dataclasses.replace(check, enforced=False)
    return check


def _side(ref: ModelRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"uri": ref.uri, "version": ref.version, "run_id": ref.run_id, "model_id": ref.model_id}


def _report(config: GateConfig, state: GateState) -> dict[str, Any]:
    from steps import __version__
    from steps.checks import report as reports

    champion = _side(state.champion)
    if champion is not None:
        champion["alias"] = config.champion_alias
    return {
        "mlsteps": __version__,
        "step": "gate",
        "model": config.model_name,
        "candidate": _side(state.candidate),
        "champion": champion,
        "verdict": verdict(state.checks),
        "evaluation": {
            "summary": state.evaluation,
            "data": Path(config.data).name if config.data else None,
            "data_digest": state.data_digest or None,
            "rows": int(len(state.data)) if state.data is not None else None,
            "task": state.task or None,
            "resamples": state.resamples if config.data else None,
            "confidence": config.confidence if config.data and config.resamples else None,
            "seed": state.seed if config.data and config.resamples else None,
            "seed_from": (
                "--seed" if config.seed is not None else "the digests of the data and the models"
            )
            if config.data and config.resamples
            else None,
            "default_margin": str(config.default_margin) if config.default_margin else None,
        },
        "checks": [c.to_json() for c in state.checks],
        "metrics": state.metrics,
        "not_judged": state.not_judged,
        "notes": [*state.notes, *reports.infinite(state.metrics)],
    }


def _log_report(config: GateConfig, state: GateState) -> None:
    from steps.checks import report as reports

    candidate = state.candidate
    assert candidate and candidate.run_id
    run = state.rest._call("GET", "runs/get", params={"run_id": candidate.run_id})["run"]
    artifact_uri = run["info"]["artifact_uri"].rstrip("/")
    for path in state.paths.values():
        rel = f"{REPORT_ARTIFACT_DIR}/{path.name}"
        state.artifacts.upload(artifact_uri, rel, path.read_bytes())
    if state.inferred_schema is not None:
        body = json.dumps(state.inferred_schema, indent=2, sort_keys=True).encode()
        state.artifacts.upload(artifact_uri, SCHEMA_ARTIFACT, body)
    tags = {
        VERDICT_TAG: state.report["verdict"],
        CHAMPION_TAG: state.champion.version if state.champion and state.champion.version
        else NO_CHAMPION,
        REPORT_DIGEST_TAG: reports.digest(state.report),
        REPORT_URI_TAG: f"{artifact_uri}/{REPORT_ARTIFACT_DIR}/report.json",
    }  # fmt: skip
    state.rest.set_tags(candidate.run_id, tags)
    if candidate.kind == "version" and candidate.name and candidate.version:
        for key, value in tags.items():
            try:
                state.rest._call(
                    "POST", "model-versions/set-tag",
                    json={"name": candidate.name, "version": candidate.version, "key": key,
                          "value": value},
                )  # fmt: skip
            except MlflowApiError as exc:
                raise exc.as_step_failed("tagging the model version with the verdict") from None


def _result(runtime: Runtime, state: GateState, applied: list[str]) -> StepResult:
    from steps.checks import report as reports

    report = state.report
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    outputs = {
        "decision": report["verdict"],
        "candidate-version": (state.candidate.version or "") if state.candidate else "",
        "champion-version": state.champion.version or "" if state.champion else "",
        "report": str(state.paths.get("md", "")),
        "report-digest": reports.digest(report),
        "failed": str(len(failed)),
    }
    summary = reports.markdown(report)
    face = runtime.get_face()
    for check in report["checks"]:
        if check["status"] == "warn":
            face.warning(f"warn-only: {reports.reason(check)}")
    if failed:
        runtime.partial_outputs = outputs
        who = describe(state.candidate)
        raise GateRejected(
            f"gate rejected {who}: {len(failed)} check{'s' if len(failed) > 1 else ''} failed: "
            + "; ".join(reports.reason(c) for c in failed)
            + f".{_not_judged(state)} Report: {state.paths.get('md')}",
            summary=summary,
        )
    face.info(
        f"gate passed: {describe(state.candidate)} ({len(report['checks'])} checks)."
        + _not_judged(state)
    )
    return StepResult(outputs=outputs, summary=summary, applied=tuple(applied))


def _not_judged(state: GateState) -> str:
    if not state.not_judged:
        return ""
    return " Not judged: " + "; ".join(f"{n} ({why})" for n, why in state.not_judged.items()) + "."


def step_failed(doing: str, exc: Exception) -> StepFailed:
    return StepFailed(f"{doing} failed: {type(exc).__name__}: {str(exc)[:300]}")
