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

from steps.core.errors import StepFailed
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
        held.write_timeout(20.0)


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


WORKER = """
import json, random, sys, time
from steps.locks import FileLock, LockTimeout

path, log, ttl, until = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
random.seed()
with open(log, "w") as out:
    while time.time() < until:
        lock = FileLock(path, ttl=ttl, timeout=5, purpose="race")
        try:
            lock.acquire()
        except LockTimeout:
            continue
        assert lock.record is not None
        start, expires = time.time(), lock.record.expires
        # Most holders finish within their lease; some get stuck past it (and are taken
        # over), then wake up and release: the moment a stale takeover races a new holder.
        time.sleep(random.uniform(0.001, 0.02) if random.random() < 0.7 else ttl * 1.1)
        end = time.time()
        lock.release()
        out.write(json.dumps([start, min(end, expires)]) + "\\n")
"""


def test_stale_takeover_never_gives_a_live_lease_to_two_processes(tmp_path: Path) -> None:
    """Eight processes race for one file lock for 6 s, some of them stuck past their lease
    (taken over) and releasing late. The time each held a live lease (from acquiring until it
    released or the lease ended) never overlaps another's."""
    path, until = tmp_path / "m.lock", time.time() + 6
    logs = [tmp_path / f"holder-{i}.log" for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(log), "0.15", str(until)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for log in logs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    held = sorted(tuple(json.loads(line)) for log in logs for line in log.read_text().splitlines())
    assert len(held) > 50  # the race ran: many acquisitions, some taken over
    overlaps, latest = [], held[0]
    for lease in held[1:]:
        if lease[0] < latest[1]:  # began before an earlier live lease ended
            overlaps.append((latest, lease))
        latest = max(latest, lease, key=lambda x: x[1])
    assert overlaps == [], f"{len(overlaps)} of {len(held)} leases overlap, e.g. {overlaps[:3]}"


HOLDER = """
import sys
from steps.locks import FileLock
lock = FileLock(sys.argv[1], ttl=600, timeout=20, purpose=sys.argv[2])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_a_takeover_cannot_unlink_the_lock_of_a_holder_that_came_after_the_stale_one(
    tmp_path: Path,
) -> None:
    """The race of a stale takeover, made to happen: a waiter sees the stale record and is
    held up (here: the test holds the takeover guard); meanwhile the stale holder releases and
    a new process takes the lock. When the guard is free, the waiter must not unlink the new
    holder's file: exactly one of the two holds the lock."""
    import fcntl

    path = tmp_path / "m.lock"
    stale = lock(path, ttl=0.05)
    stale.acquire()
    time.sleep(0.1)  # its lease ran out: the next waiter takes it over
    guard = os.open(f"{path}.takeover", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(guard, fcntl.LOCK_EX)

    def holder(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    waiter = holder("waiter")
    newcomer: subprocess.Popen[str] | None = None
    try:
        time.sleep(1.0)  # the waiter has seen the stale record and waits for the guard
        stale.release()
        newcomer = holder("newcomer")
        time.sleep(1.0)
        fcntl.flock(guard, fcntl.LOCK_UN)
        time.sleep(1.5)
        holders = []
        for proc in (waiter, newcomer):
            os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
            if (proc.stdout.readline() if proc.stdout else "") == "held\n":
                holders.append(proc)
        assert len(holders) == 1, "both processes hold the lock"
        held_by = json.loads(path.read_text())["purpose"]
        assert held_by == ("waiter" if holders[0] is waiter else "newcomer")
    finally:
        os.close(guard)
        for proc in (waiter, newcomer):
            if proc is not None:
                proc.kill()
                proc.wait(10)
