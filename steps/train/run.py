"""Applying train's plan: one handler per action kind, and the state of the training while
they run. ``--dry-run`` never imports this module; steps/train/ holds the options, the plan
and the command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps import __version__
from steps.core.errors import MlstepsError, StepFailed
from steps.core.plan import Action
from steps.core.runtime import Runtime
from steps.services.lineage import ci_run_url, data_digest, git_commit
from steps.train.options import TRACKING_CREDENTIALS, GpuRequest, TrainConfig
from steps.train.plan import all_mounts, container_network, run_tag_names

if TYPE_CHECKING:
    from steps.services.secret_files import SecretFiles


class TrainRun:
    """The state of one training while its plan is applied."""

    def __init__(self, config: TrainConfig, runtime: Runtime) -> None:
        from steps.services.containers import Owner

        self.config = config
        self.runtime = runtime
        self.face = runtime.get_face()
        self.owner = Owner("train")
        self.client: Any = None
        self.tracking: Any = None
        self.run_id = ""
        self.experiment_id = ""
        self.image_digest = ""
        self.exit_code: int | None = None
        self.run_ended = False
        self.metrics: dict[str, float] = {}
        self.model_uri = ""
        self.secret_files: SecretFiles | None = None

    # -- handlers, one per plan action kind --
    def handlers(self) -> dict[str, Any]:
        return {
            "containers.sweep": self.sweep,
            "image.ensure": self.ensure_image,
            "mlflow.start-run": self.start_run,
            "secrets.write": self.write_secrets,
            "container.run": self.run_container,
            "process.run": self.run_process,
            "mlflow.end-run": self.end_run,
        }

    def docker(self) -> Any:
        if self.client is None:
            from steps.services import containers

            self.client = containers.connect()
        return self.client

    def sweep(self, action: Action) -> None:
        from steps.services import containers

        containers.sweep_orphans(self.docker(), self.face.info)

    def ensure_image(self, action: Action) -> None:
        from steps.services import containers

        assert self.config.image is not None
        info = containers.ensure_image(
            self.docker(),
            self.config.image,
            self.config.pull,
            self.config.platform,
            lambda text, final: self.face.progress("pull", text, final=final),
        )
        self.image_digest = info.digest
        self.face.detail(f"image {info.ref} is {info.digest}")

    def start_run(self, action: Action) -> None:
        from steps.services.mlflow import tracking

        assert self.config.tracking_uri is not None
        self.tracking = tracking.connect(self.config.tracking_uri)
        if self.config.run_id:
            self.experiment_id = self.tracking.existing_run_experiment(self.config.run_id)
            self.run_id = self.config.run_id
            self.tracking.set_tags(self.run_id, self.run_tags())
        else:
            self.experiment_id = self.tracking.experiment_id(self.config.experiment)
            # Tags ride along with the create call: one round trip fewer on every run.
            self.run_id = self.tracking.create_run(
                self.experiment_id, self.config.run_name, self.run_tags()
            )
        self.face.info(f"MLflow run {self.run_id} (experiment {self.experiment_id})")

    def run_tags(self) -> dict[str, str]:
        env = self.runtime.environ
        tags = {
            "mlflow.source.git.commit": git_commit(env),
            "mlsteps.ci.run-url": ci_run_url(env),
            "mlsteps.backend": self.config.backend,
            "mlsteps.version": __version__,
        }
        if self.config.backend == "docker":
            tags.update(
                {
                    "mlsteps.image": self.config.image or "",
                    "mlsteps.image-digest": self.image_digest,
                    "mlsteps.gpus": str(self.config.gpus),
                }
            )
        if self.config.data_dir:
            tags["mlsteps.data-digest"] = data_digest(self.config.data_dir)
        assert set(tags) == set(run_tag_names(self.config)), "keep run_tag_names in step"
        return {k: v for k, v in tags.items() if v}

    def write_secrets(self, action: Action) -> None:
        from steps.core import signals
        from steps.services import secret_files

        base = str(action.data["base"])
        secret_files.sweep(base, self.face.info)
        # The bytes mlsteps was given: fsencode undoes Python's decoding of the environment.
        values = {n: os.fsencode(self.runtime.environ[n]) for n in self.config.secret_env}
        # Shielded: a cancel lands after the directory is recorded for removal, never between.
        with signals.shielded():
            self.secret_files = secret_files.write(values, base, self.owner.labels())
        variables = ", ".join(action.data["file_env_names"])
        self.face.detail(f"secret files written to {self.secret_files.dir} ({variables})")

    def remove_secrets(self) -> None:
        """Delete the secret files (idempotent). Callers hold signals off meanwhile."""
        if self.secret_files is None:
            return
        problem = self.secret_files.remove()
        self.secret_files = None
        if problem:
            self.face.warning(f"could not remove the secret files ({problem}): delete it by hand.")

    @contextmanager
    def secrets_removed_after(self) -> Iterator[None]:
        """The secret files live as long as the training: removed on every way out of it, with
        signals held meanwhile (GitHub's second signal must not cut the removal short)."""
        from steps.core import signals

        try:
            yield
        except BaseException:
            with signals.shielded(deliver=False):
                self.remove_secrets()
            raise
        with signals.shielded():
            self.remove_secrets()

    def training_env(self, tracking_uri: str | None, *, in_container: bool) -> dict[str, str]:
        env: dict[str, str] = {}
        for pair in self.config.env:
            name, sep, value = pair.partition("=")
            env[name] = value if sep else self.runtime.environ.get(name, "")
        if self.config.secrets_as_env:
            env.update({n: self.runtime.environ[n] for n in self.config.secret_env})
        elif self.secret_files is not None:
            env.update(self.secret_files.env(in_container=in_container))
        if self.run_id and tracking_uri:
            env.update(
                MLFLOW_TRACKING_URI=tracking_uri,
                MLFLOW_RUN_ID=self.run_id,
                MLFLOW_EXPERIMENT_ID=self.experiment_id,
            )
            # The training logs to the same server, so it needs the same credentials.
            for name in TRACKING_CREDENTIALS:
                if self.runtime.environ.get(name):
                    env[name] = self.runtime.environ[name]
        return env

    def run_container(self, action: Action) -> None:
        with self.secrets_removed_after():
            self._run_container()

    def _run_container(self) -> None:
        from steps.core.errors import ConfigError
        from steps.services import containers
        from steps.services.secret_files import CONTAINER_DIR

        config = self.config
        network, uri, extra_hosts = container_network(config)
        if extra_hosts:
            self.face.warning(
                f"the tracking server is on the host's loopback but --network is {network}: "
                "the container reaches it as host.docker.internal, which works only if the "
                "server listens on the Docker bridge address or 0.0.0.0."
            )
        if config.gpus.kind == "auto":
            runtimes = self.docker().info().get("Runtimes", {})
            gpus = GpuRequest("all" if "nvidia" in runtimes else "none")
            self.face.info(
                "--gpus auto: the engine has the NVIDIA runtime, using all GPUs"
                if gpus.kind == "all"
                else "--gpus auto: no NVIDIA runtime on the engine, training on CPU"
            )
        else:
            gpus = config.gpus
        env = self.training_env(uri, in_container=True)
        env.update({"MLSTEPS_DATA_DIR": "/data"} if config.data_dir else {})
        env.update({"MLSTEPS_OUTPUT_DIR": "/output"} if config.output_dir else {})
        if config.output_dir:
            # Made here, as the invoking user: Docker would create a missing one owned by root.
            Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        labels = dict(pair.split("=", 1) for pair in config.labels)
        labels.update(self.owner.labels())
        if self.run_id:
            labels["io.mlsteps.mlflow-run-id"] = self.run_id
        spec = containers.ContainerSpec(
            image=config.image or "",
            command=config.command,
            environment=env,
            labels=labels,
            volumes={
                m.host: {"bind": m.container, "mode": "ro" if m.read_only else "rw"}
                for m in all_mounts(config)
            },
            read_only_binds=[(str(self.secret_files.dir), CONTAINER_DIR)]
            if self.secret_files
            else [],
            device_requests=gpus.device_requests(),
            working_dir=config.workdir,
            user=config.user,
            network_mode=network,
            extra_hosts=extra_hosts,
            shm_size=config.shm_size,
            mem_limit=config.memory,
            nano_cpus=int(config.cpus * 1e9) if config.cpus else None,
            platform=config.platform,
        )
        with self.face.group("training log"), self.face.untrusted_lines():
            try:
                outcome = containers.run_container(
                    self.docker(),
                    spec,
                    self.owner.invocation,
                    timeout=config.timeout,
                    on_line=self.face.log_line,
                    on_created=lambda cid: self.face.detail(f"container {cid[:12]} created"),
                )
            except ConfigError as exc:
                if self.secret_files and str(self.secret_files.root) in exc.message:
                    raise ConfigError(
                        f"the Docker daemon cannot see the secret files mlsteps wrote in "
                        f"{self.secret_files.root}: it runs on another machine or in another "
                        "mount namespace (e.g. mlsteps runs in a container that shares the "
                        "host's Docker socket). Run mlsteps where the daemon's files are, or "
                        "pass --secrets-as-env true (then docker inspect shows the values)."
                    ) from None
                raise
        self.exit_code = outcome.exit_code
        self._judge(outcome.exit_code, outcome.oom_killed, outcome.timed_out, outcome.log_tail)

    def run_process(self, action: Action) -> None:
        with self.secrets_removed_after():
            self._run_process()

    def _run_process(self) -> None:
        from steps.services.processes import run_process

        # Secrets delivered as files are not also left in the process's environment.
        hidden = () if self.config.secrets_as_env else self.config.secret_env
        env = {k: v for k, v in self.runtime.environ.items() if k not in hidden}
        env.update(self.training_env(self.config.tracking_uri, in_container=False))
        if self.config.data_dir:
            env["MLSTEPS_DATA_DIR"] = self.config.data_dir
        if self.config.output_dir:
            Path(self.config.output_dir).mkdir(parents=True, exist_ok=True)
            env["MLSTEPS_OUTPUT_DIR"] = self.config.output_dir
        with self.face.group("training log"), self.face.untrusted_lines():
            outcome = run_process(
                list(self.config.command),
                env=env,
                cwd=self.config.workdir,
                timeout=self.config.timeout,
                on_line=self.face.log_line,
            )
        self.exit_code = outcome.exit_code
        self._judge(outcome.exit_code, False, outcome.timed_out, outcome.log_tail)

    def _judge(self, code: int, oom: bool, timed_out: bool, tail: list[str]) -> None:
        shown = "\n".join(f"  | {line}" for line in tail[-20:]) or "  | (no output)"
        if timed_out:
            raise StepFailed(
                f"training timed out after {self.config.timeout:g}s (--timeout) and was stopped. "
                f"Last lines:\n{shown}"
            )
        # Exit 137 is SIGKILL; with a memory limit set that is the OOM killer even where the
        # engine (cgroup v1 without the flag) does not report OOMKilled.
        if oom or (code == 137 and self.config.memory):
            raise StepFailed(
                f"training ran out of memory: the container was killed at its memory limit of "
                f"{self.config.memory_text} (--memory). Raise --memory or use less memory. "
                f"Last lines:\n{shown}"
            )
        if code != 0:
            raise StepFailed(f"training exited with code {code}. Last lines:\n{shown}")

    def end_run(self, action: Action) -> None:
        self.finish("FINISHED")
        readback = self.tracking.read_back(self.run_id)
        self.metrics, self.model_uri = readback.metrics, readback.model_uri

    def finish(self, status: str) -> None:
        if self.tracking is not None and self.run_id and not self.run_ended:
            self.tracking.end_run(self.run_id, status)
            self.run_ended = True

    def finish_after_failure(self, status: str) -> None:
        """Mark the run FAILED or KILLED, quickly (a cancelled CI job is killed seconds after
        its signal) and without hiding the error that ended the training."""
        if self.tracking is None or not self.run_id or self.run_ended:
            return
        try:
            self.tracking.end_run(self.run_id, status, timeout=3)
            self.run_ended = True
        except MlstepsError as exc:
            self.face.warning(f"MLflow run {self.run_id} is left RUNNING: {exc.message}")

    def outputs(self) -> dict[str, str]:
        return {
            "run-id": self.run_id,
            "experiment-id": self.experiment_id,
            "model-uri": self.model_uri,
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "image-digest": self.image_digest,
            "exit-code": "" if self.exit_code is None else str(self.exit_code),
        }

    def summary(self) -> str:
        rows = "\n".join(
            f"| {name} | `{value}` |" for name, value in self.outputs().items() if value
        )
        metrics = "\n".join(f"| {k} | {v:.6g} |" for k, v in sorted(self.metrics.items()))
        text = f"### mlsteps train\n\n| output | value |\n| --- | --- |\n{rows}\n"
        if metrics:
            text += f"\n| metric | value |\n| --- | --- |\n{metrics}\n"
        return text
