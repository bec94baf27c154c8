"""`mlsteps secrets revoke` takes only the records `secrets fetch` wrote, and removes only the
files fetch wrote: the attacks of a record that a repository commits (or another user writes,
or a symlink points at), and of a fetched file replaced by a symlink to a victim. Each ends in
exit 2 with the record and the reason named, the victim intact and no server contacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_secrets import Cli, Done

pytestmark = pytest.mark.services


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that records whether anyone connected: the URL a foreign record names."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    yield sock
    sock.close()


def contacted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def victim(cli: Cli) -> Path:
    path = cli.cwd / "victim.txt"
    path.write_text("precious\n")
    path.chmod(0o600)  # as private as fetch's own files: only the inode tells them apart
    return path


def record(url: str, files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "url": url,
        "namespace": None,
        "token": "hvs.attacker-supplied",
        "token_owned": True,
        "leases": ["database/creds/x/abc"],
        "files": files,
        "tls": {"ca-cert": None, "client-cert": None, "client-key": None, "tls-skip-verify": False},
        **extra,
    }


def identity(path: Path) -> dict[str, Any]:
    """What fetch records of a file it wrote."""
    info = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "device": info.st_dev, "inode": info.st_ino, "sha256": digest}


def refused(done: Done, record_path: Path, why: str, cwd: Path) -> None:
    # Records found in the default directory are named as found: relative to the directory.
    shown = (
        record_path.relative_to(cwd)
        if record_path.is_relative_to(cwd / ".mlsteps")
        else record_path
    )
    assert done.code == 2, done
    assert f"--lease-file {shown}:" in done.err and why in done.err, done
    assert "nothing was revoked or removed" in done.err, done
    assert "Traceback" not in done.err, done


def test_a_committed_record_listing_a_victim_is_refused(cli: Cli, listener: socket.socket) -> None:
    target = victim(cli)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    committed = cli.cwd / ".mlsteps" / "secrets" / "lease-committed.json"
    committed.parent.mkdir(parents=True)
    committed.write_text(json.dumps(record(url, [identity(target)])))
    committed.chmod(0o644)  # what a checkout gives a committed file
    done = cli.run("secrets", "revoke")  # no --lease-file: the default directory is searched
    refused(done, committed, "of mode 0644, not 0600", cli.cwd)
    assert target.read_text() == "precious\n" and committed.exists()
    assert not contacted(listener), "revoke contacted the URL a foreign record named"


def test_a_record_checked_out_under_umask_077_naming_a_victim_by_its_inode_is_refused(
    cli: Cli, listener: socket.socket
) -> None:
    # git (and tar) under `umask 077` check out a committed record 0600 and ours, just as
    # fetch writes it; say the attacker even knows the victim's device and inode (a CI image
    # is the same on every run). Only the content, which they do not know, tells it apart.
    target = victim(cli)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    upstream = cli.cwd / "upstream"
    committed = upstream / ".mlsteps" / "secrets" / "lease-committed.json"
    committed.parent.mkdir(parents=True)
    guessed = {**identity(target), "sha256": hashlib.sha256(b"").hexdigest()}
    committed.write_text(json.dumps(record(url, [guessed])))
    git = ["git", "-c", "user.name=a", "-c", "user.email=a@example.invalid"]
    subprocess.run([*git, "init", "-q", str(upstream)], check=True)
    subprocess.run([*git, "-C", str(upstream), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(upstream), "commit", "-qm", "x"], check=True)
    checkout = cli.cwd / "checkout"
    subprocess.run(
        ["sh", "-c", 'umask 077 && git clone -q "$1" "$2"', "sh", str(upstream), str(checkout)],
        check=True,
    )
    record_path = checkout / ".mlsteps" / "secrets" / "lease-committed.json"
    assert stat.S_IMODE(record_path.stat().st_mode) == 0o600  # passes the record's own check
    done = subprocess.run(
        [sys.executable, "-m", "steps", "secrets", "revoke"],
        capture_output=True, text=True, timeout=60, cwd=checkout, env=cli.env(),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"its file {target} is now a file of other content than fetch wrote" in done.stderr
    assert "nothing was revoked or removed" in done.stderr and "Traceback" not in done.stderr
    assert target.read_text() == "precious\n" and record_path.exists()
    assert not contacted(listener), "revoke contacted the URL a foreign record named"


def fetched(cli: Cli) -> tuple[dict[str, str], Path, Path]:
    """A real fetch of one secret into values.env, recorded in lease.json: (env, both paths)."""
    cli.put("secret", f"{cli.uid}/db", {"password": f"pw-{cli.uid}"})
    env = cli.reader()
    values, lease = cli.cwd / "values.env", cli.cwd / "lease.json"
    done = cli.run(
        "secrets", "fetch", "--secrets", f"secret/{cli.uid}/db password", "--file", str(values),
        "--lease-file", str(lease), env=env,
    )  # fmt: skip
    assert done.code == 0, done
    return env, values, lease


def test_revoke_empties_a_fetched_file_that_was_hard_linked_elsewhere(cli: Cli) -> None:
    # A hard link is the same inode: it passes every check, and removing fetch's name would
    # leave the values readable under the other one. Emptied first, it holds nothing.
    env, values, lease = fetched(cli)
    kept = cli.cwd / "kept" / "copy.env"
    kept.parent.mkdir()
    os.link(values, kept)
    done = cli.run("secrets", "revoke", "--lease-file", str(lease), env=env)
    assert done.code == 0, done
    assert not values.exists() and not lease.exists()
    assert kept.exists() and kept.read_bytes() == b""


def test_a_fetched_file_changed_after_fetch_is_not_removed(cli: Cli) -> None:
    env, values, lease = fetched(cli)
    with values.open("a") as out:  # same inode, another content
        out.write("ADDED=by someone\n")
    done = cli.run("secrets", "revoke", "--lease-file", str(lease), env=env)
    assert done.code == 2, done
    assert f"its file {values} is now a file of other content" in done.err, done
    assert values.read_text().endswith("ADDED=by someone\n") and lease.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file of another owner needs root")
def test_a_record_of_another_owner_is_refused(cli: Cli, listener: socket.socket) -> None:
    target = victim(cli)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    foreign = cli.cwd / "lease-foreign.json"
    foreign.write_text(json.dumps(record(url, [identity(target)])))
    foreign.chmod(0o600)
    os.chown(foreign, 65534, 65534)
    done = cli.run("secrets", "revoke", "--lease-file", str(foreign))
    refused(done, foreign, "owned by uid 65534, not by this user", cli.cwd)
    assert target.read_text() == "precious\n" and foreign.exists()
    assert not contacted(listener)


def test_a_record_that_is_a_symlink_is_refused(cli: Cli, listener: socket.socket) -> None:
    target = victim(cli)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    real = cli.cwd / "elsewhere.json"
    real.write_text(json.dumps(record(url, [identity(target)])))
    real.chmod(0o600)
    link = cli.cwd / ".mlsteps" / "secrets" / "lease-link.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    done = cli.run("secrets", "revoke")
    refused(done, link, "it is a symbolic link", cli.cwd)
    assert target.read_text() == "precious\n" and real.exists() and link.is_symlink()
    assert not contacted(listener)


def test_one_foreign_record_stops_revoke_before_any_record_is_acted_on(cli: Cli) -> None:
    # A record fetch really wrote, and beside it a committed one: the good one is kept too.
    cli.put("secret", f"{cli.uid}/db", {"password": f"pw-{cli.uid}"})
    env = cli.reader()
    values = cli.cwd / "values.env"
    done = cli.run(
        "secrets", "fetch", "--secrets", f"secret/{cli.uid}/db password", "--file", str(values),
        env=env,
    )  # fmt: skip
    assert done.code == 0, done
    directory = cli.cwd / ".mlsteps" / "secrets"
    (good,) = directory.glob("lease-*.json")
    bad = directory / "lease-zzz.json"
    bad.write_text(json.dumps(record(cli.vault.addr, [])))
    bad.chmod(0o644)
    done = cli.run("secrets", "revoke", env=env)
    refused(done, bad, "of mode 0644", cli.cwd)
    assert good.exists() and values.exists()


@pytest.mark.parametrize("replacement", ["symlink", "other-file"])
def test_a_fetched_file_replaced_after_fetch_is_not_removed(cli: Cli, replacement: str) -> None:
    env, values, lease = fetched(cli)
    written = json.loads(lease.read_text())["files"]
    assert written == [identity(values)]
    target = victim(cli)
    # Made beside it, then renamed over it: the old inode is still in use when the new
    # file gets its number, so the numbers differ (an unlink first could reuse it).
    other = cli.cwd / "other"
    if replacement == "symlink":
        other.symlink_to(target)
        why = "is now not a regular file"
    else:  # a private file of ours at the same path, but not the one fetch wrote
        other.write_text("someone else's\n")
        other.chmod(0o600)
        why = "another file than the one fetch wrote"
    os.replace(other, values)
    done = cli.run("secrets", "revoke", "--lease-file", str(lease), env=env)
    assert done.code == 2, done
    assert f"its file {values}" in done.err and why in done.err, done
    assert "Traceback" not in done.err
    assert target.read_text() == "precious\n" and lease.exists()
    assert values.is_symlink() if replacement == "symlink" else values.exists()
    # Once the user removed what is there, the record revokes as usual.
    values.unlink()
    done = cli.run("secrets", "revoke", "--lease-file", str(lease), env=env)
    assert done.code == 0, done
    assert not lease.exists() and target.exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param("\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param("[1, 2]", "not a JSON object", id="a-list"),
        pytest.param(json.dumps({"version": 1, "url": "http://x", "files": ["/etc/passwd"]}),
                     "version 1, expected 2", id="old-version"),
        pytest.param(json.dumps({**record("http://127.0.0.1:9", []), "leases": "abc"}),
                     "'leases' must be a list of lease ids", id="leases-a-string"),
        pytest.param(json.dumps({**record("http://127.0.0.1:9", []), "files": ["/etc/passwd"]}),
                     "each of 'files' must be {path (absolute), device, inode, sha256}",
                     id="file-a-string"),
        pytest.param(json.dumps({k: v for k, v in record("http://127.0.0.1:9", []).items()
                                 if k != "url"}), "'url' must be a URL", id="no-url"),
        pytest.param(json.dumps({**record("http://127.0.0.1:9", []), "token_owned": "yes"}),
                     "'token_owned' must be true or false", id="owned-a-string"),
        pytest.param(json.dumps({**record("http://127.0.0.1:9", []), "tls": None}),
                     "'tls' must be an object", id="tls-null"),
        pytest.param(json.dumps({**record("file:///etc", [])}),
                     "'url' must be an http(s) URL without credentials", id="url-not-http"),
        pytest.param(json.dumps({**record("http://u:p@127.0.0.1:9", [])}),
                     "'url' must be an http(s) URL without credentials", id="url-credentials"),
    ],
)  # fmt: skip
def test_a_malformed_record_is_bad_input(cli: Cli, content: str, why: str) -> None:
    path = cli.cwd / "lease.json"
    path.write_bytes(content.encode("latin-1") if content == "\xff\xfe" else content.encode())
    path.chmod(0o600)
    done = cli.run("secrets", "revoke", "--lease-file", str(path))
    assert done.code == 2, done
    assert f"--lease-file {path}: not a lease record of this mlsteps ({why}" in done.err, done
    assert "Traceback" not in done.err and done.seconds < 10, done
    assert path.exists()


def test_a_record_too_large_is_refused_without_reading_it_all(cli: Cli) -> None:
    path = cli.cwd / "lease.json"
    with path.open("wb") as out:
        out.truncate(64 << 20)  # sparse: 64 MiB of zeros
    path.chmod(0o600)
    done = cli.run("secrets", "revoke", "--lease-file", str(path))
    assert done.code == 2, done
    assert "larger than 1048576 bytes" in done.err and "Traceback" not in done.err, done


def test_fetch_makes_new_parent_directories_private(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/db", {"password": f"pw-{cli.uid}"})
    values = cli.cwd / "a" / "b" / "values.env"
    done = cli.run(
        "secrets", "fetch", "--secrets", f"secret/{cli.uid}/db password", "--file", str(values),
        "--lease-file", str(cli.cwd / "lease.json"), env=cli.reader(),
    )  # fmt: skip
    assert done.code == 0, done
    for directory in (cli.cwd / "a", cli.cwd / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_the_dry_run_reads_the_records_and_refuses_what_the_run_would(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/db", {"password": f"pw-{cli.uid}"})
    env = cli.reader()
    values = cli.cwd / "values.env"
    done = cli.run(
        "secrets", "fetch", "--secrets", f"secret/{cli.uid}/db password", "--file", str(values),
        env=env,
    )  # fmt: skip
    assert done.code == 0, done
    (good,) = (cli.cwd / ".mlsteps" / "secrets").glob("lease-*.json")
    dry = cli.run("--dry-run", "secrets", "revoke", env=env)
    assert dry.code == 0, dry
    shown = good.relative_to(cli.cwd)
    assert f"revoke the 0 lease(s) in {shown}, remove its 1 file(s)" in dry.out, dry
    assert good.exists() and values.exists()
    bad = good.parent / "lease-zzz.json"
    bad.write_text(json.dumps(record(cli.vault.addr, [])))
    bad.chmod(0o644)
    refused(cli.run("--dry-run", "secrets", "revoke", env=env), bad, "of mode 0644", cli.cwd)
    assert good.exists() and values.exists() and bad.exists()


def test_a_file_that_cannot_be_removed_is_emptied_and_the_leases_still_revoked(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/db", {"password": f"pw-{cli.uid}"})
    env = cli.reader()
    locked = cli.cwd / "locked"
    locked.mkdir()
    values, lease = locked / "values.env", cli.cwd / "lease.json"
    done = cli.run(
        "secrets", "fetch", "--secrets", f"secret/{cli.uid}/db password", "--file", str(values),
        "--lease-file", str(lease), env=env,
    )  # fmt: skip
    assert done.code == 0, done
    # Root removes names from any directory it may not write, but not from an append-only one.
    lock = ["chattr", "+a", str(locked)] if os.geteuid() == 0 else ["chmod", "500", str(locked)]
    unlock = ["chattr", "-a", str(locked)] if os.geteuid() == 0 else ["chmod", "700", str(locked)]
    subprocess.run(lock, check=True)
    try:
        done = cli.run("secrets", "revoke", "--lease-file", str(lease), env=env)
    finally:
        subprocess.run(unlock, check=True)
    assert done.code == 0, done
    assert f"{values} was emptied but not removed (" in done.err, done
    assert "remove it yourself" in done.err and "Traceback" not in done.err, done
    assert values.read_bytes() == b"" and not lease.exists()
