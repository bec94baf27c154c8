"""The lease fence of promote's locks, against each real backend (a file with the kernel's
flock, OpenBao's KV v2, moto's DynamoDB — an AWS emulator): a write under the lock gets a request
timeout that ends before the lease does, and none starts when the lease is about to end, so a
holder whose lease ran out cannot write over the one that took the lock over.
The concurrent takeover of the file lock is in tests/unit/locks/test_locks.py.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from steps.core.errors import StepFailed
from steps.core.runtime import Runtime
from steps.locks import Lock
from steps.locks.base import SAFETY_MARGIN
from steps.promote.lock import make_lock
from steps.promote.options import load_config
from tests.integration.test_promote import (
    Model,
    Relay,
    base_env,
    dynamodb_table,
    file_is_free,
    run,
    vault_lock_env,
)
from tests.services import MlflowServer, MotoServer, VaultServer

pytestmark = pytest.mark.services

TTL = 8.0


@pytest.fixture()
def model(mlflow_server: MlflowServer) -> Model:
    return Model(mlflow_server, 1)


@pytest.fixture(params=["file", "vault", "dynamodb"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The lock options and the environment of one backend."""
    name = f"fence-{uuid.uuid4().hex[:8]}"
    if request.param == "file":
        yield ["--lock-path", str(tmp_path / "fence.lock")], {}
    elif request.param == "vault":
        vault: VaultServer = request.getfixturevalue("vault_server")
        env = vault_lock_env(vault, tmp_path)
        yield ["--lock", "vault", "--lock-path", f"secret/mlsteps/locks/{name}"], env
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        for key, value in moto.env().items():  # boto3 reads its credentials from os.environ
            monkeypatch.setenv(key, value)
        yield ["--lock", "dynamodb", "--lock-path", dynamodb_table(moto)], moto.env()


def make(backend: tuple[list[str], dict[str, str]], on_warning: Any = lambda line: None) -> Lock:
    args, env = backend
    flags: dict[str, Any] = {
        "tracking-uri": "http://127.0.0.1:9", "name": "fenced", "version": "1",
        "require-gate": False, "expected-champion": "any",
        **dict(zip(args[::2], args[1::2], strict=True)),
    }  # fmt: skip
    flags = {k.removeprefix("--"): v for k, v in flags.items()}
    runtime = Runtime(environ={**os.environ, **env})
    config = load_config(runtime, flags, rollback=False)
    lock = make_lock(config, runtime, "fence test")
    # load_config refuses a --lock-ttl under 30 s: the short lease is set on the lock itself.
    lock.ttl, lock.on_warning = TTL, on_warning
    return lock


def test_a_write_gets_what_the_lease_leaves_and_none_starts_near_its_end(
    backend: tuple[list[str], dict[str, str]],
) -> None:
    holder = make(backend)
    holder.acquire()
    try:
        bound = holder.write_timeout(20.0)
        # 20 s wanted, but the lease ends in at most 8 s: the write is given up 5 s before.
        assert 0 < bound <= TTL - SAFETY_MARGIN
        assert holder.write_timeout(0.5) == 0.5  # a shorter wish stands
        time.sleep(TTL - SAFETY_MARGIN - 0.5)  # under a second of usable lease left
        with pytest.raises(StepFailed) as caught:
            holder.write_timeout(20.0)
        assert "too soon to write to the registry safely" in caught.value.message
        assert "Raise --lock-ttl" in caught.value.message
        # Once the lease ran out, another process takes the lock over; the old holder still
        # cannot write.
        time.sleep(SAFETY_MARGIN + 0.5)
        warnings: list[str] = []
        taker = make(backend, on_warning=warnings.append)
        taker.acquire()
        assert warnings and "took over the stale lock" in warnings[0]
        with pytest.raises(StepFailed, match="too soon to write"):
            holder.write_timeout(20.0)
        assert taker.write_timeout(20.0) > 0
        taker.release()
    finally:
        holder.release()
    with pytest.raises(StepFailed, match="is not held"):
        holder.write_timeout(20.0)


class SlowReads(Relay):
    """A relay to MLflow that holds up each read of an alias by `delay` seconds: the run
    spends its lease waiting on the server, as a slow registry would make it."""

    def __init__(self, target: str, delay: float) -> None:
        self.delay = delay
        super().__init__(target)

    def _relay(self, client: Any, upstream: Any) -> None:
        import socket

        def answers(up: Any) -> None:
            # Not self._pipe: the server closing an idle connection (during a delay) must not
            # close the client's; the next request goes on a new one.
            with contextlib.suppress(OSError):
                while data := up.recv(65536):
                    client.sendall(data)

        def requests_up(up: Any) -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if b"GET /api/2.0/mlflow/registered-models/alias" in data:
                        time.sleep(self.delay)
                        up = socket.create_connection(self.target)
                        self.sockets.append(up)
                        Thread(target=answers, args=(up,), daemon=True).start()
                    up.sendall(data)

        Thread(target=answers, args=(upstream,), daemon=True).start()
        Thread(target=requests_up, args=(upstream,), daemon=True).start()


def test_a_run_whose_lease_ran_short_moves_nothing(model: Model, tmp_path: Path) -> None:
    """The two alias reads under the lock take 13 s each of a 30 s lease: 4 s are left when
    the first alias would move, less than a write may take. promote writes nothing, exits 1
    saying why, and frees the lock."""
    model.gate(1)
    path = tmp_path / "slow.lock"
    relay = SlowReads(model.uri, 13)
    try:
        args = model.args("--version", "1", "--lock-path", str(path), "--lock-ttl", "30s")
        args[args.index(model.uri)] = relay.url
        done = run(["promote", *args], base_env(tmp_path), tmp_path)
    finally:
        relay.close()
    assert done.returncode == 1, done.stderr
    assert f"the lock file {path} expires in " in done.stderr
    assert "too soon to write to the registry safely" in done.stderr
    assert "Raise --lock-ttl" in done.stderr and "Traceback" not in done.stderr
    assert model.alias("champion") is None and model.alias("previous-champion") is None
    assert model.evidence(1) == {}
    assert file_is_free(path)


def test_every_registry_write_is_fenced_by_the_lease_undo_included(
    model: Model, tmp_path: Path
) -> None:
    """promote's registry (which the aliases, the evidence and the undo all write through) asks
    the lock before each write: near the end of the lease, setting or removing an alias or a
    tag is refused before a request goes out, so the real MLflow is left as it was."""
    from steps.locks import FileLock
    from steps.services.mlflow.model_registry import Registry

    model.set_alias("champion", 1)
    holder = FileLock(tmp_path / "fenced.lock", ttl=TTL, timeout=5.0)
    holder.acquire()
    try:
        registry = Registry(model.uri, model.name, holder.write_timeout)
        registry.set_tag("1", "mlsteps.promote.at", "early")  # within the lease: written
        time.sleep(TTL - SAFETY_MARGIN - 0.5)
        for write in (
            lambda: registry.set_alias("champion", None),
            lambda: registry.set_alias("previous-champion", "1"),
            lambda: registry.set_tag("1", "mlsteps.promote.at", "late"),
            lambda: registry.delete_tag("1", "mlsteps.promote.at"),
        ):
            with pytest.raises(StepFailed, match="too soon to write to the registry safely"):
                write()
    finally:
        holder.release()
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert model.tags(1)["mlsteps.promote.at"] == "early"
