"""train's options: the parsers of their values, the section every face maps, the resolved
config and the checks across options. steps/train/plan.py builds the plan from a TrainConfig.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.core.config_file import resolve
from steps.core.errors import ConfigError
from steps.core.options import MLFLOW, Option, Output, Section
from steps.core.runtime import Runtime
from steps.core.text import redact_url
from steps.core.values import absolute_path, check_path, parse_duration, parse_platform, parse_size
from steps.train import HELP


@dataclass(frozen=True)
class GpuRequest:
    """--gpus: none | all | a count | device ids (0,2 or GPU-uuid) | auto."""

    kind: str  # none | all | count | ids | auto
    count: int = 0
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return {"count": str(self.count), "ids": ",".join(self.ids)}.get(self.kind, self.kind)

    def device_requests(self) -> list[dict[str, Any]]:
        """The DeviceRequest Docker gets (what `docker run --gpus` sends)."""
        if self.kind in ("none", "auto"):
            return []
        request: dict[str, Any] = {"driver": "", "capabilities": [["gpu"]]}
        if self.kind == "all":
            request["count"] = -1
        elif self.kind == "count":
            request["count"] = self.count
        else:
            request["device_ids"] = list(self.ids)
        return [request]


GPU_FORM = "all, none, auto, a count such as 2, or device ids such as 0,2"


def parse_gpus(text: str) -> GpuRequest:
    text = text.strip().lower() if text.strip().lower() in ("all", "none", "auto") else text.strip()
    if text in ("all", "none", "auto"):
        return GpuRequest(text)
    if text.isdigit():
        return GpuRequest("count", count=int(text)) if int(text) > 0 else GpuRequest("none")
    ids = tuple(part.strip() for part in text.split(","))
    if ids and all(re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+", i) for i in ids):
        return GpuRequest("ids", ids=ids)
    raise ValueError(GPU_FORM)


@dataclass(frozen=True)
class MountSpec:
    host: str
    container: str
    read_only: bool

    def __str__(self) -> str:
        return f"{self.host}:{self.container}{':ro' if self.read_only else ''}"


def parse_mount(text: str, base: Path | None = None) -> MountSpec:
    """host:container[:ro]; a relative host path starts from ``base`` (the file's directory
    for a mount written in mlsteps.yaml)."""
    parts = text.split(":")
    mode = parts.pop() if len(parts) == 3 else "rw"
    if len(parts) != 2 or mode not in ("ro", "rw") or not parts[0] or not parts[1].startswith("/"):
        raise ValueError("host:container or host:container:ro, with an absolute container path")
    check_path(parts[1])
    return MountSpec(absolute_path(parts[0], base or Path.cwd()), parts[1], mode == "ro")


def parse_env_pair(text: str) -> str:
    name = text.split("=", 1)[0]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError("KEY=VALUE (or KEY alone to pass this environment's value)")
    return text


def parse_label(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0]:
        raise ValueError("key=value")
    return text


def parse_secret_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError("an environment variable name such as DB_PASSWORD (the name only)")
    return text


SECTION = Section(
    "train",
    HELP,
    (
        Option(
            name="image",
            help="Training image, e.g. `registry.example/trainer:1.4` (needed with "
            "--backend `docker`).",
        ),
        Option(
            name="command",
            kind="list",
            help="Command and arguments to run (on the CLI: after `--`).",
            cli=False,
            env_format="shell",
        ),
        Option(
            name="backend",
            kind="choice",
            choices=("docker", "local"),
            default="docker",
            help="`docker` runs the image; `local` runs the command as a process on this machine.",
        ),
        Option(
            name="workdir",
            help="Working directory of the training command: in the container, or on this"
            " machine with --backend `local`.",
        ),
        Option(
            name="env",
            kind="list",
            jenkins_map=True,
            parse=parse_env_pair,
            metavar="KEY=VALUE",
            help="Environment for the command, `KEY=VALUE`; `KEY` alone passes this "
            "environment's value.",
        ),
        Option(
            name="secret-env",
            kind="list",
            parse=parse_secret_name,
            metavar="NAME",
            face_help={  # where each runner's secrets come from
                "action": "Names of environment variables to pass in as secrets, one per line; "
                "set their values in the step's `env:`. The training reads each from the file "
                "`/run/secrets/NAME` (on a private tmpfs, read-only), whose path is in "
                "`NAME_FILE`.",
                "jenkins": "Names of environment variables passed in as secrets, a List; set "
                "them with `withCredentials` around the step. The training reads each from the "
                "file `/run/secrets/NAME` (on a private tmpfs, read-only), whose path is in "
                "`NAME_FILE`.",
            },
            help="Names of secrets passed in from this environment; values are never "
            "shown. The training reads each from the file `/run/secrets/NAME` (on a "
            "private tmpfs, read-only), whose path is in `NAME_FILE`.",
        ),
        Option(
            name="secrets-as-env",
            kind="bool",
            default=False,
            metavar="true|false",
            help="`true` passes the --secret-env values as environment variables instead "
            "of files. Unsafe with Docker: anyone with access to the daemon reads "
            "them with `docker inspect`.",
        ),
        Option(
            name="mount",
            kind="list",
            parse=parse_mount,
            parse_takes_base=True,
            metavar="HOST:CONTAINER[:ro]",
            help="Bind mount into the container, `host:container[:ro]`.",
        ),
        Option(
            name="data-dir",
            kind="path",
            help="Training data, mounted read-only at `/data`; its content digest is "
            "tagged on the run.",
        ),
        Option(
            name="output-dir",
            kind="path",
            help="Directory mounted at `/output` for the command's files.",
        ),
        Option(
            name="gpus",
            parse=parse_gpus,
            default=GpuRequest("none"),
            metavar="all|N|IDS|none|auto",
            help="GPUs for the container: `all`, `none`, `auto`, a count such as `2`, or "
            "device ids such as `0,2`. `auto` uses them when the engine has the "
            "NVIDIA runtime.",
        ),
        Option(
            name="shm-size", parse=parse_size, metavar="SIZE", help="Size of `/dev/shm`, e.g. `2g`."
        ),
        Option(name="memory", parse=parse_size, metavar="SIZE", help="Memory limit, e.g. `8g`."),
        Option(
            name="cpus",
            kind="float",
            metavar="N",
            limits=(0.01, 4096),  # Docker's smallest share; below it the limit would be none
            help="CPU limit, e.g. `1.5`.",
        ),
        Option(
            name="user", help="User (name or `uid[:gid]`) the command runs as in the container."
        ),
        Option(
            name="network",
            help="Docker network. Default: `host` when the tracking URI is on loopback "
            "(so the container reaches it), else Docker's default bridge.",
        ),
        Option(
            name="timeout",
            parse=parse_duration,
            metavar="DURATION",
            help="Stop the training after this long, e.g. `90m` or `2h`.",
        ),
        Option(
            name="pull",
            kind="choice",
            choices=("always", "missing", "never"),
            default="missing",
            help="When to pull the image: `always`, `missing` or `never`.",
        ),
        Option(
            name="label",
            kind="list",
            jenkins_map=True,
            parse=parse_label,
            metavar="KEY=VALUE",
            help="Container label, `key=value`.",
        ),
        Option(name="platform", parse=parse_platform, help="Image platform, e.g. `linux/amd64`."),
        Option(name="run-id", help="Continue this MLflow run instead of creating one."),
        Option(name="run-name", help="Name of the new MLflow run."),
    ),
)

# MLflow's own variables for an authenticated server: passed on to the training. The token
# and the password are masked like secrets (a user name is not a secret).
TRACKING_CREDENTIALS = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)
TRACKING_SECRETS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")

OUTPUTS = (
    Output("run-id", "ID of the MLflow run."),
    Output("experiment-id", "ID of the MLflow experiment of the run."),
    Output("model-uri", "URI of the model the run logged (empty when none was logged)."),
    Output("metrics", "Final metrics of the run as a JSON object."),
    Output("image-digest", "Digest of the training image that ran."),
    Output("exit-code", "Exit code of the training command."),
)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    image: str | None
    command: tuple[str, ...]
    backend: str
    workdir: str | None
    env: tuple[str, ...]
    secret_env: tuple[str, ...]
    secrets_as_env: bool
    mounts: tuple[MountSpec, ...]
    data_dir: str | None
    output_dir: str | None
    gpus: GpuRequest
    shm_size: int | None
    memory: int | None
    cpus: float | None
    user: str | None
    network: str | None
    timeout: float | None
    pull: str
    labels: tuple[str, ...]
    platform: str | None
    run_id: str | None
    run_name: str | None
    tracking_uri: str | None
    experiment: str
    # --secret-env names this environment does not set: a dry run shows them in its plan,
    # a run refuses to start.
    unset_secret_env: tuple[str, ...] = ()

    @property
    def memory_text(self) -> str:
        return _human_size(self.memory) if self.memory else "none"


MIN_MEMORY = 6 * 2**20  # Docker refuses less at container creation


def _human_size(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def load_config(runtime: Runtime, flags: Mapping[str, Any], command: list[str]) -> TrainConfig:
    cfg = runtime.config_file()
    values = {k: v.value for k, v in resolve(SECTION, flags, cfg, runtime.environ).items()}
    tracking = {k: v.value for k, v in resolve(MLFLOW, flags, cfg, runtime.environ).items()}
    config = TrainConfig(
        image=values["image"],
        command=tuple(command or values["command"] or ()),
        backend=values["backend"],
        workdir=values["workdir"],
        env=tuple(values["env"] or ()),
        secret_env=tuple(values["secret-env"] or ()),
        secrets_as_env=values["secrets-as-env"],
        mounts=tuple(values["mount"] or ()),
        data_dir=values["data-dir"],
        output_dir=values["output-dir"],
        gpus=values["gpus"],
        shm_size=values["shm-size"],
        memory=values["memory"],
        cpus=values["cpus"],
        user=values["user"],
        network=values["network"],
        timeout=values["timeout"],
        pull=values["pull"],
        labels=tuple(values["label"] or ()),
        platform=values["platform"],
        run_id=values["run-id"],
        run_name=values["run-name"],
        tracking_uri=tracking["tracking-uri"],
        experiment=tracking["experiment"],
        unset_secret_env=tuple(n for n in values["secret-env"] or () if n not in runtime.environ),
    )
    _check(config, dry_run=runtime.dry_run)
    return config


def _check(config: TrainConfig, *, dry_run: bool = False) -> None:
    """Cross-option checks: each names the option and the fix."""
    if config.backend == "docker" and not config.image:
        raise ConfigError(
            "train needs an image: give --image IMAGE (env MLSTEPS_TRAIN_IMAGE, or train.image "
            "in mlsteps.yaml), or use --backend local to run the command as a local process."
        )
    if config.backend == "local" and not config.command:
        raise ConfigError(
            "--backend local needs the command to run: mlsteps train --backend local -- "
            "python train.py (or train.command in mlsteps.yaml)."
        )
    if config.data_dir and not Path(config.data_dir).is_dir():
        raise ConfigError(
            f"--data-dir {config.data_dir}: no such directory. Give an existing directory."
        )
    if config.output_dir:
        # The run creates it: the nearest part that exists must be a directory.
        existing = next(
            p for p in (Path(config.output_dir), *Path(config.output_dir).parents) if p.exists()
        )
        if not existing.is_dir():
            raise ConfigError(
                f"--output-dir {config.output_dir}: {existing} is a file, not a directory. "
                "Give a directory (it is created when missing)."
            )
    if config.memory is not None and config.memory < MIN_MEMORY:
        raise ConfigError(
            f"--memory {config.memory_text}: Docker needs a memory limit of at least 6m. "
            "Give a larger one, e.g. 512m, or leave --memory out."
        )
    if config.backend == "local":
        if config.workdir and not Path(config.workdir).is_dir():
            raise ConfigError(
                f"--workdir {config.workdir}: no such directory on this machine (--backend local "
                "runs the command here). Give an existing directory."
            )
        docker_only = [
            flag
            for flag, value in (
                ("--image", config.image),
                ("--mount", config.mounts),
                ("--gpus", config.gpus.kind != "none"),
                ("--memory", config.memory),
                ("--cpus", config.cpus),
                ("--shm-size", config.shm_size),
                ("--user", config.user),
                ("--network", config.network),
                ("--platform", config.platform),
            )
            if value
        ]
        if docker_only:
            raise ConfigError(
                f"{', '.join(docker_only)}: container options, but --backend local runs the "
                "command as a process on this machine. Drop them, or use --backend docker."
            )
    for mount in config.mounts:
        if not Path(mount.host).exists():
            raise ConfigError(
                f"--mount {mount}: the host path {mount.host} does not exist. "
                "Create it or fix the path."
            )
    if config.unset_secret_env and not dry_run:
        raise ConfigError(
            f"--secret-env {', '.join(config.unset_secret_env)}: not set in this environment. "
            "Provide it (the secrets step, withCredentials, or a GitHub secret in env:), or drop "
            "the name."
        )
    _check_secrets(config)
    if config.run_id and not config.tracking_uri:
        raise ConfigError(
            f"--run-id {config.run_id} needs a tracking server: set --tracking-uri "
            "(env MLSTEPS_MLFLOW_TRACKING_URI, or mlflow.tracking-uri in mlsteps.yaml)."
        )
    if (
        config.backend == "docker"
        and config.tracking_uri
        and not config.tracking_uri.startswith(("http://", "https://"))
    ):
        raise ConfigError(
            f"mlflow.tracking-uri {redact_url(config.tracking_uri)}: a training container can "
            "only reach an MLflow server over http(s). Start `mlflow server` and use its URL, "
            "or use --backend local."
        )


def _check_secrets(config: TrainConfig) -> None:
    from steps.services.secret_files import CONTAINER_DIR, file_variable

    as_files = bool(config.secret_env) and not config.secrets_as_env
    taken = set(config.secret_env) | (
        {file_variable(n) for n in config.secret_env} if as_files else set()
    )
    clash = [n for n in (pair.split("=", 1)[0] for pair in config.env) if n in taken]
    if clash:
        raise ConfigError(
            f"--env {', '.join(clash)}: that variable carries a --secret-env secret (NAME, or "
            "NAME_FILE with the path of its file). Drop it from --env."
        )
    if as_files and config.backend == "docker":
        for mount in config.mounts:
            if (mount.container.rstrip("/") + "/").startswith(CONTAINER_DIR + "/"):
                raise ConfigError(
                    f"--mount {mount}: {CONTAINER_DIR} holds the --secret-env files. Mount "
                    "elsewhere."
                )
