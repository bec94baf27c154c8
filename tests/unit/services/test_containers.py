"""Pure parts of steps/services/containers.py; the engine-facing parts are in tests/integration."""

from __future__ import annotations

import collections

from steps.services.containers import Owner, owner_alive
from steps.services.processes import pump_lines


def test_lines_are_split_per_stream_and_never_glued_across_streams() -> None:
    chunks = [(b"one\ntw", None), (None, b"err-a"), (b"o\nthr", b"\n"), (b"ee", None)]
    seen: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=2)
    pump_lines(iter(chunks), seen.append, tail)
    assert seen == ["one", "two", "err-a", "three"]
    assert list(tail) == ["err-a", "three"]


def test_undecodable_bytes_do_not_stop_the_stream() -> None:
    seen: list[str] = []
    pump_lines(iter([(b"caf\xe9\r\nok\n", None)]), seen.append, collections.deque())
    assert seen == ["caf\ufffd", "ok"]


def test_owner_labels_name_this_process_and_it_is_alive() -> None:
    owner = Owner("train")
    labels = owner.labels()
    assert labels["io.mlsteps.step"] == "train" and len(labels["io.mlsteps.invocation"]) == 32
    assert owner_alive(labels, owner.host)
    assert not owner_alive({**labels, "io.mlsteps.owner-start": "0"}, owner.host)  # pid reused
    assert owner_alive({**labels, "io.mlsteps.owner-host": "elsewhere"}, owner.host)
    # a runner in a container on the same host and socket: its pids are not ours to look up
    assert owner_alive({**labels, "io.mlsteps.owner-pidns": "pid:[1]@other-boot"}, owner.host)
