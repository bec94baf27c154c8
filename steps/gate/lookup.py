"""Finding what a gate judges: the candidate and the champion it is compared with, read from
the MLflow registry over REST. Only reads, so the dry run shows the same models the run would
judge, and a candidate that does not exist is bad input (exit 2) before anything is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steps.core.errors import ConfigError
from steps.core.text import redact_url

if TYPE_CHECKING:
    from steps.gate.options import GateConfig
    from steps.services.mlflow.model_source import ModelRef
    from steps.services.mlflow.tracking import RestTracking


def describe(ref: ModelRef | None) -> str:
    if ref is None:
        return "none"
    if ref.version:
        return f"version {ref.version} of '{ref.name}' (run {ref.run_id})"
    return f"{ref.uri} (run {ref.run_id})"


def find(config: GateConfig, rest: RestTracking) -> tuple[ModelRef, ModelRef | None, list[str]]:
    """(the candidate, the champion or None, notes for the report)."""
    from steps.services.mlflow import model_source
    from steps.services.mlflow.tracking import MlflowApiError

    candidate = model_source.resolve(config.model_uri, config.tracking_uri)
    if not candidate.run_id:
        raise ConfigError(
            f"--model-uri {config.model_uri}: this model has no MLflow run, and gate compares "
            "runs' metrics and logs its report to the candidate's run. Give the model as "
            "logged by a run (runs:/RUN_ID/PATH, or a version registered from a run)."
        )
    if not config.champion_alias:
        return (
            candidate,
            None,
            ["No champion compared (--champion-alias none): value thresholds only."],
        )
    name = config.model_name
    assert name
    if candidate.kind == "version" and candidate.name != name:
        raise ConfigError(
            f"--model-uri {config.model_uri} is a version of '{candidate.name}', but --name is "
            f"'{name}', whose @{config.champion_alias} would be the champion. Give the same "
            "model name to both (or --champion-alias none to judge the candidate alone)."
        )
    try:
        registered = rest._call("GET", "registered-models/get", params={"name": name})
    except MlflowApiError as exc:
        if exc.absent:
            raise ConfigError(
                f"--name {name}: no registered model of that name on "
                f"{redact_url(rest.uri)}. Check the name (the MLflow UI lists registered "
                "models); for the very first model, judge it on its own with --champion-alias "
                "none (package registers it)."
            ) from None
        raise exc.as_step_failed("reading the registered model") from None
    try:
        found = rest._call(
            "GET", "registered-models/alias", params={"name": name, "alias": config.champion_alias}
        )
    except MlflowApiError as exc:
        if exc.absent:
            _no_champion_yet(config, registered)
            return candidate, None, [
                f"Model '{name}' has no version under @{config.champion_alias} yet: value "
                "thresholds only; change thresholds were not checked."
            ]  # fmt: skip
        raise exc.as_step_failed("reading the champion alias") from None
    version = str(found["model_version"]["version"])
    champion = model_source.resolve(f"models:/{name}/{version}", config.tracking_uri)
    notes = []
    if candidate.name == name and candidate.version == version:
        notes.append(f"The candidate is the champion (version {version}).")
    return candidate, champion, notes


def _no_champion_yet(config: GateConfig, registered: dict[str, Any]) -> None:
    """The alias is missing. Before any promotion no alias exists at all: judging on value
    thresholds is right. But a model that has other aliases and not this one points at a typo
    in --champion-alias, which would silently skip every change threshold: refuse."""
    aliases = sorted(a["alias"] for a in registered.get("registered_model", {}).get("aliases", []))
    if aliases:
        raise ConfigError(
            f"--champion-alias {config.champion_alias}: model '{config.model_name}' has no "
            f"such alias (it has {', '.join('@' + a for a in aliases)}). Give the alias that "
            "marks the version in production (promote moves @champion by default), or "
            "--champion-alias none when no version is in production yet."
        )
