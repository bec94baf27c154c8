"""What ``mlsteps train`` will do, as a ``Plan`` (``--dry-run`` prints it). Light: it imports
no heavy library and never the run (steps/train/run.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from steps.core.plan import Plan
from steps.core.text import redact_url
from steps.train.options import (
    MountSpec,
    TrainConfig,
)

# ----- plan ---------------------------------------------------------------------------------


def _is_loopback(uri: str) -> bool:
    host = urlsplit(uri).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def container_network(config: TrainConfig) -> tuple[str | None, str | None, dict[str, str] | None]:
    """(network mode, tracking URI as the container sees it, extra hosts).

    A server on the host's loopback is reachable from a container only through the host
    network; on a bridge network the URI is rewritten to host.docker.internal (mapped to the
    host gateway), which reaches a server listening on the bridge address or 0.0.0.0.
    """
    uri = config.tracking_uri
    if not uri or not _is_loopback(uri):
        return config.network, uri, None
    if config.network in (None, "host"):
        return "host", uri, None
    parts = urlsplit(uri)
    netloc = "host.docker.internal" + (f":{parts.port}" if parts.port else "")
    return (
        config.network,
        urlunsplit(parts._replace(netloc=netloc)),
        {"host.docker.internal": "host-gateway"},
    )


def build_plan(config: TrainConfig) -> Plan:
    plan = Plan("train")
    command_text = shlex.join(config.command) if config.command else "(the image's default command)"
    env_names = [pair.split("=", 1)[0] for pair in config.env]
    tracked = bool(config.tracking_uri)
    if config.backend == "docker":
        plan.add(
            "containers.sweep",
            "remove containers left behind by mlsteps runs on this host that are no longer alive",
        )
        plan.add(
            "image.ensure",
            f"use image {config.image} (pull: {config.pull}"
            + (f", platform {config.platform})" if config.platform else ")"),
            image=config.image,
            pull=config.pull,
            platform=config.platform,
        )
    if tracked:
        assert config.tracking_uri is not None
        uri = redact_url(config.tracking_uri)
        if config.run_id:
            line = f"continue MLflow run {config.run_id} at {uri} and tag it"
        else:
            line = f"create an MLflow run in experiment '{config.experiment}' at {uri} and tag it"
        plan.add(
            "mlflow.start-run",
            line,
            tracking_uri=uri,
            experiment=config.experiment,
            run_id=config.run_id,
            run_name=config.run_name,
            tags=run_tag_names(config),
        )
    secrets_line = _plan_secrets(plan, config)
    if config.backend == "docker":
        network, _, _ = container_network(config)
        mounts = [str(m) for m in all_mounts(config)]
        gpu_requests = config.gpus.device_requests()
        line = f"run `{command_text}` in {config.image}; GPUs: {config.gpus}"
        if mounts:
            line += f"; mounts: {', '.join(mounts)}"
        if config.memory:
            line += f"; memory limit {config.memory_text}"
        if config.timeout:
            line += f"; timeout {config.timeout:g}s"
        plan.add(
            "container.run",
            line + secrets_line,
            image=config.image,
            command=list(config.command),
            mounts=mounts,
            device_requests=[_docker_case(r) for r in gpu_requests],
            gpus=str(config.gpus),
            env_names=env_names,
            secret_env_names=list(config.secret_env),
            secrets_as="env" if config.secrets_as_env else "files",
            network=network,
            memory=config.memory,
            cpus=config.cpus,
            shm_size=config.shm_size,
            user=config.user,
            workdir=config.workdir,
            timeout=config.timeout,
            labels=list(config.labels),
        )
    else:
        plan.add(
            "process.run",
            f"run `{command_text}` as a local process"
            + (f" in {config.workdir}" if config.workdir else "")
            + secrets_line,
            command=list(config.command),
            env_names=env_names,
            secret_env_names=list(config.secret_env),
            secrets_as="env" if config.secrets_as_env else "files",
            workdir=config.workdir,
            timeout=config.timeout,
        )
    if tracked:
        plan.add(
            "mlflow.end-run",
            "mark the MLflow run FINISHED (FAILED or KILLED if training fails or is "
            "cancelled) and read back its metrics and logged model",
        )
    return plan


def secrets_as_env_warning(config: TrainConfig) -> str:
    names = ", ".join(config.secret_env)
    if config.backend == "docker":
        exposure = (
            "reach the container as environment variables: anyone with access to the Docker "
            "daemon can read their values with `docker inspect` while the container exists"
        )
    else:
        exposure = (
            "reach the training process as environment variables, readable in its "
            "/proc/PID/environ by this user and root"
        )
    return (
        f"--secrets-as-env: {names} {exposure}. Leave --secrets-as-env off (the default) to "
        "pass them as files named by NAME_FILE instead."
    )


def _plan_secrets(plan: Plan, config: TrainConfig) -> str:
    """Add the secrets.write action when secrets go as files; return what the run line says
    about the secrets. Names only: a plan never holds a value."""
    from steps.services.secret_files import CONTAINER_DIR, base_dir, file_variable

    if not config.secret_env:
        return ""
    names = ", ".join(config.secret_env)
    if config.unset_secret_env:  # only a dry run gets here with one: a run refuses first
        unset = ", ".join(config.unset_secret_env)
        names += f" ({unset} not set in this environment: the run would stop there)"
    in_container = config.backend == "docker"
    if config.secrets_as_env:
        if in_container:
            return f"; secrets {names} as environment variables (docker inspect shows them)"
        return f"; secrets {names} as environment variables"
    base, tmpfs = base_dir()
    where = f"under {base}" + (" (tmpfs)" if tmpfs else " (not tmpfs: no writable tmpfs here)")
    mounted = f", mounted read-only at {CONTAINER_DIR}" if in_container else ""
    variables = [file_variable(n) for n in config.secret_env]
    plan.add(
        "secrets.write",
        f"write {len(config.secret_env)} secret file(s) ({names}) to a private directory "
        f"{where}{mounted}; {', '.join(variables)} name the files; the directory is removed "
        "when the training ends (and ones left by dead mlsteps runs first)",
        names=list(config.secret_env),
        unset_names=list(config.unset_secret_env),
        base=base,
        tmpfs=tmpfs,
        container_dir=CONTAINER_DIR if in_container else None,
        file_env_names=variables,
    )
    return f"; secrets {names} as files" + (f" in {CONTAINER_DIR}" if in_container else "")


def run_tag_names(config: TrainConfig) -> list[str]:
    """The tags a run gets, for the plan; TrainRun.run_tags fills the same names in."""
    names = ["mlflow.source.git.commit", "mlsteps.ci.run-url", "mlsteps.backend", "mlsteps.version"]
    if config.backend == "docker":
        names += ["mlsteps.image", "mlsteps.image-digest", "mlsteps.gpus"]
    if config.data_dir:
        names.append("mlsteps.data-digest")
    return names


def _docker_case(request: Mapping[str, Any]) -> dict[str, Any]:
    """DeviceRequest as the engine's inspect shows it (Driver, Count, DeviceIDs, Capabilities)."""
    names = {
        "driver": "Driver",
        "count": "Count",
        "device_ids": "DeviceIDs",
        "capabilities": "Capabilities",
    }
    return {names[k]: v for k, v in request.items()}


def all_mounts(config: TrainConfig) -> list[MountSpec]:
    mounts = list(config.mounts)
    if config.data_dir:
        mounts.append(MountSpec(config.data_dir, "/data", True))
    if config.output_dir:
        mounts.append(MountSpec(config.output_dir, "/output", False))
    return mounts
