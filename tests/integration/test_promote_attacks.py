"""Attacks on promote's trust in the gate's report (its digest handed on by the runner) and on
its file lock, against the real MLflow server: what a training holding the MLflow credentials,
or another user of the machine, can try.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from steps.checks.report import canonical_json, digest
from tests.integration.test_promote import (
    EVIDENCE,
    Model,
    assert_refused,
    base_env,
    file_is_free,
    outputs,
    run,
)
from tests.services import MlflowServer

pytestmark = pytest.mark.services


@pytest.fixture()
def model(mlflow_server: MlflowServer) -> Model:
    return Model(mlflow_server, 3)


def gate_step(model: Model, version: int, minimum: float, tmp_path: Path) -> tuple[int, str]:
    """`mlsteps gate` itself on a version (its runs logged accuracy 0.9): exit code and its
    report-digest output, as a runner takes it on."""
    done = run(
        [
            "gate", "--tracking-uri", model.uri, "--name", model.name, "--model-uri",
            f"models:/{model.name}/{version}", "--metrics", f"{{accuracy: {{min: {minimum}}}}}",
        ],
        base_env(tmp_path),
        tmp_path,
    )  # fmt: skip
    document = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    return done.returncode, json.loads(document)["outputs"]["report-digest"]


def logged_report(model: Model, version: int) -> bytes:
    run_id = model.runs[str(version)]
    got = requests.get(
        f"{model.uri}/get-artifact",
        params={"run_uuid": run_id, "path": "mlsteps/gate/report.json"},
        timeout=10,
    )
    assert got.ok, got.text
    return got.content


def test_a_report_the_training_logged_before_the_gate_is_replaced_by_the_gates(
    model: Model, tmp_path: Path
) -> None:
    """The training logs a passing report.json at the gate's path before the gate runs. The
    gate overwrites it with its own; the digest handed on is of the gate's bytes, so the
    training's report (and the digest it could compute of it) counts for nothing."""
    forged = canonical_json(model.report(1)).encode()
    model.log_report(model.runs["1"], forged)
    code, handed = gate_step(model, 1, 0.95, tmp_path)  # 0.9 < 0.95: rejected
    assert code == 3
    body = logged_report(model, 1)
    assert body != forged and "sha256:" + hashlib.sha256(body).hexdigest() == handed
    env = base_env(tmp_path)
    done = run(["promote", *model.args("--version", "1", "--gate-report-digest", handed)],
               env, tmp_path)  # fmt: skip
    assert done.returncode == 3 and "gate rejected version 1" in done.stderr
    own = run(
        ["promote", *model.args("--version", "1", "--gate-report-digest", digest(model.report(1)))],
        env,
        tmp_path,
    )
    assert_refused(own, model, "not the report of the gate step that gave this digest")


def test_a_pass_against_another_champion_moves_nothing(model: Model, tmp_path: Path) -> None:
    """The gate passed version 2 against champion 1; version 3 became the champion since.
    The pass is not a pass against version 3: exit 1, the alias stays."""
    model.set_alias("champion", 3)
    handed = model.gate(2, champion="1")
    done = run(["promote", *model.args("--version", "2", "--gate-report-digest", handed)],
               base_env(tmp_path), tmp_path)  # fmt: skip
    assert done.returncode == 1 and "another promotion won" in done.stderr
    assert "Traceback" not in done.stderr
    assert model.alias("champion") == "3" and model.evidence(2) == {}


@pytest.mark.parametrize(
    "shape, words",
    [
        ("duplicate", "no repeated keys"),
        ("nan", "no NaN or Infinity"),
        ("huge", "over 16 MiB"),
    ],
)
def test_a_report_the_gate_would_never_write_is_refused_even_with_its_digest(
    model: Model, tmp_path: Path, shape: str, words: str
) -> None:
    """Whoever can hand promote a digest of its own choosing (the runner's record altered)
    still cannot make it read a verdict the gate did not write: a key twice (json keeps the
    last verdict, other readers the first), a NaN, or gigabytes read into memory."""
    text = canonical_json(model.report(1, verdict="rejected"))
    if shape == "duplicate":
        body = (text.rstrip().removesuffix("}") + ',\n  "verdict": "pass"\n}\n').encode()
        assert json.loads(body)["verdict"] == "pass"
    elif shape == "nan":
        body = text.replace('"verdict": "rejected"', '"verdict": "pass", "x": NaN').encode()
    else:
        body = text.replace('"verdict": "rejected"', '"verdict": "pass"').encode()
        body = body[:-2] + b', "pad": "' + b"x" * (17 << 20) + b'"}\n'
    model.log_report(model.runs["1"], body)
    handed = "sha256:" + hashlib.sha256(body).hexdigest()
    done = run(["promote", *model.args("--version", "1", "--gate-report-digest", handed)],
               base_env(tmp_path), tmp_path)  # fmt: skip
    assert_refused(done, model, f"--gate-report-digest {handed}", words)


def test_extra_keys_in_the_gates_report_do_not_matter(model: Model, tmp_path: Path) -> None:
    """A report with keys promote does not read (a newer gate's) is still the gate's: the
    digest binds the bytes, the verdict and candidate are what count."""
    report = {**model.report(1), "future": {"verdict": "rejected"}}
    model.log_report(model.runs["1"], canonical_json(report).encode())
    done = run(["promote", *model.args("--version", "1", "--gate-report-digest", digest(report))],
               base_env(tmp_path), tmp_path)  # fmt: skip
    assert outputs(done)["decision"] == "promoted"


def test_a_version_the_training_registered_on_a_gated_run_is_refused(
    model: Model, tmp_path: Path
) -> None:
    """The training holds the credentials, so it can register a version of its own on the
    gated run (its source anything). The report names the version the gate judged: another
    version number is refused even with the real digest."""
    handed = model.gate(1)
    forged = model._post(
        "model-versions/create",
        {"name": model.name, "source": "s3://elsewhere/evil", "run_id": model.runs["1"]},
    )["model_version"]["version"]
    done = run(["promote", *model.args("--version", str(forged), "--gate-report-digest", handed)],
               base_env(tmp_path), tmp_path)  # fmt: skip
    assert_refused(done, model, "it judged version 1")


# ----- the file lock ------------------------------------------------------------------------


def test_a_lock_path_that_is_a_symlink_is_refused_and_its_target_untouched(
    model: Model, tmp_path: Path
) -> None:
    """Another user plants /tmp/…/MODEL.lock → a file of ours: the record would be written
    into the file it points to. Both the lock and its takeover guard are refused as links."""
    model.gate(1)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    env = base_env(tmp_path)
    for planted in ("x.lock", "y.lock.takeover"):
        link = tmp_path / planted
        link.symlink_to(victim)
        lock = str(link).removesuffix(".takeover")
        done = run(["promote", *model.args("--version", "1", "--lock-path", lock)], env, tmp_path)
        assert_refused(done, model, f"--lock-path {lock}", "a symbolic link")
        assert victim.read_text() == "precious\n"
    dangling = tmp_path / "z.lock"
    dangling.symlink_to(tmp_path / "made-by-us")
    done = run(["promote", *model.args("--version", "1", "--lock-path", str(dangling))],
               env, tmp_path)  # fmt: skip
    assert_refused(done, model, "a symbolic link")
    assert not (tmp_path / "made-by-us").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's file needs root")
def test_a_lock_file_of_another_user_or_not_a_file_is_refused(model: Model, tmp_path: Path) -> None:
    """In a shared directory another user makes the lock file first (mode 0666, so we could
    open it): they could hold it forever or rewrite its record. Refused, as is a FIFO."""
    model.gate(1)
    env = base_env(tmp_path)
    theirs = tmp_path / "theirs.lock"
    theirs.write_text("")
    theirs.chmod(0o666)
    os.chown(theirs, 65534, 65534)
    done = run(["promote", *model.args("--version", "1", "--lock-path", str(theirs))],
               env, tmp_path)  # fmt: skip
    assert_refused(done, model, "owned by user id 65534, not this user")
    assert theirs.read_text() == ""
    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    done = run(["promote", *model.args("--version", "1", "--lock-path", str(fifo))],
               env, tmp_path)  # fmt: skip
    assert_refused(done, model, "not a regular file")


def test_a_guard_file_left_by_a_killed_promote_does_not_block(model: Model, tmp_path: Path) -> None:
    """A process killed while holding PATH.takeover leaves the file; the kernel dropped its
    flock, so the next promote takes the lock at once (it does not wait)."""
    model.gate(1)
    lock = tmp_path / "locks" / "m.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [
            "python3", "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)",
            f"{lock}.takeover",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait()
    assert Path(f"{lock}.takeover").exists()
    done = run(
        [
            "promote",
            *model.args("--version", "1", "--lock-path", str(lock), "--lock-timeout", "5s"),
        ],
        base_env(tmp_path),
        tmp_path,
    )
    assert outputs(done)["decision"] == "promoted" and "waiting" not in done.stderr
    assert file_is_free(lock)


def test_only_the_exact_digest_is_taken_by_flag_and_by_environment(
    model: Model, tmp_path: Path
) -> None:
    """The faces hand the digest through MLSTEPS_PROMOTE_GATE_REPORT_DIGEST (the action's
    input, the Jenkins key): another case, a space inside, anything after it is refused.
    Whitespace around it (a file read with its newline) is trimmed, as for every option:
    what remains is the gate's exact output."""
    handed = model.gate(1)
    env = base_env(tmp_path)
    plain = ["promote", "--tracking-uri", model.uri, "--name", model.name, "--version", "1"]
    for near in (handed.upper(), handed.replace(":", ": "), f"{handed};true",
                 f"{handed} --require-gate false", handed[:-1] + "\n"):  # fmt: skip
        flag = run([*plain, "--gate-report-digest", near], env, tmp_path)
        assert_refused(flag, model, "--gate-report-digest", "report-digest output")
        by_env = run(plain, {**env, "MLSTEPS_PROMOTE_GATE_REPORT_DIGEST": near}, tmp_path)
        assert_refused(by_env, model, "MLSTEPS_PROMOTE_GATE_REPORT_DIGEST", "report-digest")
    done = run(plain, {**env, "MLSTEPS_PROMOTE_GATE_REPORT_DIGEST": f" {handed}\n"}, tmp_path)
    assert outputs(done)["decision"] == "promoted"
    assert model.evidence(1)[EVIDENCE + "report-digest"] == handed


def test_a_version_on_a_missing_or_deleted_run_is_refused(model: Model, tmp_path: Path) -> None:
    """A version the training registered naming a run that does not exist; a gated version
    whose run was deleted since (`mlflow gc` may remove the files the alias would name)."""
    env = base_env(tmp_path)
    handed = model.gate(1)
    made = model._post(
        "model-versions/create",
        {"name": model.name, "source": "s3://elsewhere/evil", "run_id": "0" * 32},
    )
    forged = str(made["model_version"]["version"])
    done = run(["promote", *model.args("--version", forged, "--gate-report-digest", handed)],
               env, tmp_path)  # fmt: skip
    assert_refused(done, model, f"the MLflow run {'0' * 32} of the version is gone")
    model._post("runs/delete", {"run_id": model.runs["1"]})
    done = run(["promote", *model.args("--version", "1")], env, tmp_path)
    assert_refused(done, model, f"the MLflow run {model.runs['1']} of the version is deleted",
                   "mlflow runs restore")  # fmt: skip
    model._post("runs/restore", {"run_id": model.runs["1"]})
    assert outputs(run(["promote", *model.args("--version", "1")], env, tmp_path))["decision"] == (
        "promoted"
    )
