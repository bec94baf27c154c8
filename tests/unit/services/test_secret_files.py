"""steps/services/secret_files.py on this machine's file system: modes, bytes, removal, sweep."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from steps.services import secret_files
from steps.services.containers import Owner

AWKWARD = 'line one\nline "two" \'three\'\n{"json": [1, 2]} %s %d $HOME `id` \\n \\ ünï ☃\n'


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_files_hold_the_bytes_with_private_parent_and_readable_files(tmp_path: Path) -> None:
    values = {"AWKWARD": AWKWARD.encode(), "RAW": b"\x00\xff no newline", "EMPTY": b""}
    files = secret_files.write(values, str(tmp_path), Owner("train").labels())
    try:
        assert files.root.parent == tmp_path
        assert files.root.name.startswith("mlsteps-secrets-")
        assert mode(files.root) == 0o700 and files.root.stat().st_uid == os.geteuid()
        assert mode(files.dir) == 0o555
        for name, value in values.items():
            assert (files.dir / name).read_bytes() == value
            assert mode(files.dir / name) == 0o444
        assert mode(files.root / "owner.json") == 0o600
        assert sorted(p.name for p in files.dir.iterdir()) == sorted(values)
        assert files.env(in_container=True) == {f"{n}_FILE": f"/run/secrets/{n}" for n in values}
        assert files.env(in_container=False)["RAW_FILE"] == str(files.dir / "RAW")
    finally:
        assert files.remove() is None
    assert not files.root.exists()
    assert files.remove() is None  # idempotent


def test_base_dir_is_dev_shm_when_it_is_a_writable_tmpfs() -> None:
    base, tmpfs = secret_files.base_dir()
    if secret_files._fs_type(os.path.realpath("/dev/shm")) != "tmpfs":
        pytest.skip("this machine's /dev/shm is not a tmpfs")
    assert (base, tmpfs) == ("/dev/shm", True)


def test_sweep_removes_directories_of_dead_owners_only(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = Owner("train", pid=dead.pid).labels()
    gone["io.mlsteps.owner-start"] = "1"  # the pid is gone or reused: either way not its owner
    left = secret_files.write({"A": b"a"}, str(tmp_path), gone)
    live = secret_files.write({"B": b"b"}, str(tmp_path), Owner("train").labels())
    # One whose writer died before it wrote its owner file: removed once it is old.
    bare = tmp_path / "mlsteps-secrets-bare"
    bare.mkdir(mode=0o700)
    os.utime(bare, (0, 0))
    other = tmp_path / "not-ours"
    other.mkdir()
    said: list[str] = []
    removed = secret_files.sweep(str(tmp_path), said.append)
    assert sorted(removed) == sorted([left.root.name, bare.name])
    assert said == ["removed 2 secret directory(ies) left by mlsteps runs that died"]
    assert live.root.exists() and other.exists()
    assert json.loads((live.root / "owner.json").read_text())["io.mlsteps.step"] == "train"
    live.remove()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    from steps.core.errors import StepFailed

    with pytest.raises(StepFailed, match="could not write the secret files"):
        # a name that cannot be a file name: the write fails after the directory exists
        secret_files.write({"A": b"a", "x/y": b"b"}, str(tmp_path), {})
    assert list(tmp_path.iterdir()) == []
