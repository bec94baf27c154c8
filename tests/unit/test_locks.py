"""The file lock (steps/locks/file.py) against the real kernel's flock, in this process and in
others; the Vault and DynamoDB locks are tested against OpenBao and moto in
tests/integration/test_promote.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steps.errors import StepFailed
from steps.locks import FileLock, LockTimeout, Record, duration


def lock(path: Path, **kwargs: object) -> FileLock:
    options: dict[str, object] = {"ttl": 60.0, "timeout": 1.0, "purpose": "test"}
    options.update(kwargs)
    return FileLock(path, **options)  # type: ignore[arg-type]


def test_one_holder_at_a_time_and_the_record_names_it(tmp_path: Path) -> None:
    path = tmp_path / "a" / "m.lock"
    first, second = lock(path), lock(path, timeout=0.3)
    waits: list[str] = []
    second.on_wait = waits.append
    with first:
        record = json.loads(path.read_text())
        assert record["holder"] == first.holder and record["purpose"] == "test"
        with pytest.raises(LockTimeout) as caught:
            second.acquire()
        assert f"held by test on {os.uname().nodename} (pid {os.getpid()})" in str(caught.value)
        assert "--lock-timeout" in str(caught.value)
        assert waits and "waiting for the lock file" in waits[0]
    assert path.read_text() == ""  # released: no holder named
    with second:
        assert second.held


def test_released_on_an_exception_and_twice_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "m.lock"
    held = lock(path)
    with pytest.raises(RuntimeError), held:
        raise RuntimeError("inside")
    assert not held.held
    held.release()
    with lock(path):
        pass


def test_a_killed_holder_leaves_nothing_to_wait_for(tmp_path: Path) -> None:
    path = tmp_path / "m.lock"
    code = (
        "import sys, time\n"
        "from steps.locks import FileLock\n"
        f"lock = FileLock({str(path)!r}, ttl=600, timeout=5, purpose='child')\n"
        "lock.acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with pytest.raises(LockTimeout):
            lock(path, timeout=0.2).acquire()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        warnings: list[str] = []
        started = time.monotonic()
        with lock(path, on_warning=warnings.append):
            # The kernel freed the dead holder's flock: taken at once, nothing to take over.
            assert time.monotonic() - started < 0.5 and warnings == []
    finally:
        child.kill()
        child.wait(10)


def test_a_stuck_holder_past_its_ttl_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "m.lock"
    stuck = lock(path, ttl=0.05)
    stuck.acquire()  # held by this process and never released: a stuck holder
    time.sleep(0.1)
    warnings: list[str] = []
    with lock(path, on_warning=warnings.append) as taker:
        assert json.loads(path.read_text())["holder"] == taker.holder
    assert len(warnings) == 1 and "took over the stale lock" in warnings[0]
    assert f"(pid {os.getpid()})" in warnings[0]
    stuck.release()  # the stuck holder wakes up: it releases its own, unlinked, file only
    with lock(path, timeout=0.2):
        pass


def test_a_lease_about_to_end_refuses_writes(tmp_path: Path) -> None:
    held = lock(tmp_path / "m.lock", ttl=2.0)
    with held, pytest.raises(StepFailed, match="Raise --lock-ttl"):
        held.check_still_held()


def test_an_unwritable_place_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="--lock-path .*cannot create the lock file"):
        lock(blocker / "m.lock").acquire()


def test_records_and_durations() -> None:
    assert duration(5) == "5s" and duration(300) == "5m" and duration(125) == "2m05s"
    assert duration(7200) == "2h" and duration(-3) == "0s"
    assert Record.from_json({"holder": ""}) is None  # a released record
    assert Record.from_json({"holder": "h:1:x", "expires": "soon"}) is None
    record = Record("host:12:ab", "promote", time.time() - 61, time.time() + 10)
    assert record.describe(time.time()).startswith("promote on host (pid 12), taken 1m0")
    assert not record.expired(time.time())
