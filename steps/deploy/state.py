"""The rollout's state file: written after every step and every look, so a controller killed
with -9 and re-run with the same arguments resumes (or finishes its rollback) instead of
starting over, and a rollout already decided is reported again without touching traffic.

One file per endpoint (``STATE_DIR/rollout.json``), written atomically (a temporary file in the
same directory, fsync, rename). A lock file beside it (flock, released by the kernel when the
holder dies, -9 included) keeps two deploys off the same endpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steps.core.errors import StepFailed
from steps.deploy.options import DeployConfig

FILE = "rollout.json"
LOCK = "rollout.lock"
# Phases, in order. "done" keeps the decision: a re-run of a decided rollout changes nothing.
PHASES = ("starting", "stepping", "finishing", "rolling-back", "done")


def rollout_key(config: DeployConfig) -> str:
    """What makes a re-run "the same rollout": the images, the endpoint and the schedule.
    The judge's settings are left out on purpose: a re-run with a longer --max-bake (after a
    hold) resumes the same rollout."""
    text = json.dumps(
        [
            config.target,
            config.endpoint,
            config.image,
            config.champion_image,
            config.strategy,
            [[s.weight, s.mirror] for s in config.schedule],
        ]
    )
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RolloutState:
    key: str
    phase: str = "starting"
    step: int = 0  # index into the schedule
    # Epoch seconds this rollout's candidate was started: what the target's logs hold from
    # before (an earlier rollout's candidate, at the same role) is not this candidate's.
    started: float = 0.0
    step_started: float = 0.0  # epoch seconds the current step's bake started
    step_base_requests: int = 0  # the candidate's requests before the current step
    cursor: dict[str, Any] = field(default_factory=dict)  # the target's observe() cursor
    judge: dict[str, Any] = field(default_factory=dict)  # Judge.to_state()
    looks: list[dict[str, Any]] = field(default_factory=list)  # for the report
    decision: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> RolloutState:
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            raise ValueError("not a rollout state")
        state = cls(key=data["key"])
        for name, kind in (
            ("phase", str), ("step", int), ("started", (int, float)),
            ("step_started", (int, float)), ("step_base_requests", int), ("cursor", dict),
            ("judge", dict), ("looks", list),
            ("decision", str), ("reason", str),
        ):  # fmt: skip
            if name in data:
                if not isinstance(data[name], kind) or isinstance(data[name], bool):
                    raise ValueError(f"{name} is not a {kind}")
                setattr(state, name, data[name])
        if state.phase not in PHASES or state.step < 0:
            raise ValueError(f"phase {state.phase!r}, step {state.step}")
        return state


class StateFile:
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE

    def read(self) -> RolloutState | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StepFailed(f"cannot read the rollout state {self.path}: {exc}") from None
        try:
            return RolloutState.from_json(json.loads(text))
        except ValueError as exc:
            raise StepFailed(
                f"the rollout state {self.path} is damaged ({exc}). Look at what the endpoint "
                "serves, then remove the file to start the next rollout afresh."
            ) from None

    def write(self, state: RolloutState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".rollout-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state.to_json(), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the endpoint's lock for the rollout; exit 1 when another deploy holds it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                raise StepFailed(
                    f"another deploy to this endpoint is running (process {holder or '?'}, lock "
                    f"{self.directory / LOCK}); wait for it to end, or stop it (it rolls back)."
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock
