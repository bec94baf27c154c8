"""`mlsteps promote` and `mlsteps rollback` against a real MLflow server, with the lock in a
real file (flock), a real OpenBao (Vault KV v2 check-and-set) and moto's DynamoDB (an AWS
emulator, the closest to DynamoDB that runs here).

Model versions are registered through MLflow's REST API and tagged as the gate tags them.
The one stand-in is `GitHubApprovals`, a loopback server answering as GitHub's API answers
`GET /repos/OWNER/REPO/actions/runs/ID/approvals` (there is no GitHub here).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import requests

from steps.checks.verdict import CHAMPION_TAG, REPORT_DIGEST_TAG, VERDICT_TAG
from tests import vault_setup
from tests.integration import gate_setup
from tests.services import MlflowServer, MotoServer, VaultServer

pytestmark = pytest.mark.services

MLSTEPS = str(Path(sys.executable).parent / "mlsteps")
EVIDENCE = "mlsteps.promote."
# What a developer's or CI's environment may hold that would steer these runs.
FOREIGN = ("MLSTEPS_", "GITHUB_", "RUNNER_", "JENKINS_", "BUILD_", "VAULT_", "AWS_", "MLFLOW_")


# ----- helpers ------------------------------------------------------------------------------


class Model:
    """A registered model of this test's own on the session's MLflow server: each version
    made from a run of its own (which logged an accuracy), as train and package make them."""

    def __init__(self, server: MlflowServer, versions: int) -> None:
        self.uri = server.uri
        self.name = f"it-promote-{uuid.uuid4().hex[:8]}"
        self.runs: dict[str, str] = {}  # version → its run
        self.digests: dict[str, str] = {}  # version → its gate report's digest
        self._post("registered-models/create", {"name": self.name})
        for _ in range(versions):
            run_id = gate_setup.run_with_metrics(self.uri, {"accuracy": 0.9})
            made = self._post(
                "model-versions/create",
                {
                    "name": self.name,
                    "source": f"s3://mlsteps-tests/{self.name}/model",
                    "run_id": run_id,
                },
            )
            self.runs[str(made["model_version"]["version"])] = run_id

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.uri}/api/2.0/mlflow/{endpoint}", json=body, timeout=10)
        assert response.ok, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def report(self, version: int, champion: str = "none", verdict: str = "pass") -> dict[str, Any]:
        """The report `mlsteps gate` writes about a version compared against `champion`."""
        return {
            "step": "gate",
            "model": self.name,
            "candidate": {
                "uri": f"models:/{self.name}/{version}",
                "version": str(version),
                "run_id": self.runs[str(version)],
                "model_id": None,
            },
            "champion": None
            if champion == "none"
            else {
                "uri": f"models:/{self.name}/{champion}",
                "version": champion,
                "alias": "champion",
            },
            "verdict": verdict,
            "checks": [],
        }

    def log_report(self, run_id: str, body: bytes) -> None:
        """Write mlsteps/gate/report.json into a run's artifacts (what anyone holding the
        MLflow credentials can do: the gate, or a training run)."""
        from steps.services.mlflow.model_source import Artifacts

        run = requests.get(
            f"{self.uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10
        ).json()["run"]
        Artifacts(self.uri).upload(run["info"]["artifact_uri"], "mlsteps/gate/report.json", body)

    def gate(self, version: int, champion: str = "none", verdict: str = "pass") -> str:
        """Log the report `mlsteps gate` logs to the version's run after comparing it against
        `champion`; its digest is what the gate step outputs (and args() hands on)."""
        from steps.checks.report import canonical_json, digest

        report = self.report(version, champion, verdict)
        self.log_report(self.runs[str(version)], canonical_json(report).encode())
        self.digests[str(version)] = digest(report)
        return self.digests[str(version)]

    def set_alias(self, alias: str, version: int) -> None:
        self._post(
            "registered-models/alias",
            {"name": self.name, "alias": alias, "version": str(version)},
        )

    def alias(self, alias: str) -> str | None:
        got = requests.get(
            f"{self.uri}/api/2.0/mlflow/registered-models/alias",
            params={"name": self.name, "alias": alias},
            timeout=10,
        )
        return str(got.json()["model_version"]["version"]) if got.ok else None

    def tags(self, version: int | str) -> dict[str, str]:
        got = requests.get(
            f"{self.uri}/api/2.0/mlflow/model-versions/get",
            params={"name": self.name, "version": str(version)},
            timeout=10,
        ).json()["model_version"]
        return {t["key"]: t["value"] for t in got.get("tags", [])}

    def evidence(self, version: int | str) -> dict[str, str]:
        return {k: v for k, v in self.tags(version).items() if k.startswith(EVIDENCE)}

    def args(self, *extra: str) -> list[str]:
        """The model's options; with --version N of a gated version, and no digest given,
        its gate's report digest too, as a pipeline hands the gate step's output on."""
        given = ["--tracking-uri", self.uri, "--name", self.name, *extra]
        if "--version" in extra and "--gate-report-digest" not in extra:
            version = extra[extra.index("--version") + 1]
            if version in self.digests:
                given += ["--gate-report-digest", self.digests[version]]
        return given


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), TMPDIR=str(tmp_path), **extra)
    return env


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MLSTEPS, "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = start(args, env, cwd)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def outputs(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr[-3000:]
    # On GitHub, workflow commands (::add-mask::) share stdout with the one JSON line.
    document = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    found: dict[str, str] = json.loads(document)["outputs"]
    return found


def file_is_free(path: Path) -> bool:
    import fcntl

    with path.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return path.read_bytes() == b""  # and names no holder


def wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    """Read the process's stderr until a line holds text; the lines read."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never came; stderr so far:\n{''.join(seen)}")


@pytest.fixture()
def model(mlflow_server: MlflowServer) -> Model:
    """Versions 1-3, none gated yet."""
    return Model(mlflow_server, 3)


# ----- promote ------------------------------------------------------------------------------


def test_first_champion_then_over_it_with_the_evidence(model: Model, tmp_path: Path) -> None:
    env = base_env(tmp_path, GITHUB_SHA="a" * 40, BUILD_URL="https://ci.example/job/7/")
    model.gate(1, champion="none")
    first = outputs(run(["promote", *model.args("--version", "1")], env, tmp_path))
    assert first == {
        "champion-version": "1",
        "previous-version": "",
        "decision": "promoted",
        "sagemaker-model-package-arn": "",  # not synced: no --sagemaker-model-package-group
    }
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None

    model.gate(2, champion="1")
    done = run(["promote", *model.args("--version", "2", "--approved-by", "ana")], env, tmp_path)
    assert outputs(done) == {
        "champion-version": "2",
        "previous-version": "1",
        "decision": "promoted",
        "sagemaker-model-package-arn": "",
    }
    assert model.alias("champion") == "2" and model.alias("previous-champion") == "1"
    evidence = model.evidence(2)
    assert evidence.pop(EVIDENCE + "at").endswith("+00:00")
    assert evidence == {
        EVIDENCE + "report-digest": model.digests["2"],
        EVIDENCE + "ci-run-url": "https://ci.example/job/7/",
        EVIDENCE + "commit": "a" * 40,
        EVIDENCE + "approved-by": "ana",
        EVIDENCE + "previous-version": "1",
    }
    assert model.evidence(1)[EVIDENCE + "previous-version"] == "none"
    # The default lock file, under the user's cache directory, is free again.
    assert file_is_free(tmp_path / "cache" / "mlsteps" / "locks" / f"{model.name}.lock")


def test_already_champion_is_unchanged_and_writes_nothing(model: Model, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    model.gate(1)
    outputs(run(["promote", *model.args("--version", "1")], env, tmp_path))
    before = model.tags(1)
    done = run(["promote", *model.args("--version", "1")], env, tmp_path)
    assert outputs(done)["decision"] == "unchanged"
    assert "already the champion" in done.stderr
    assert model.tags(1) == before and model.alias("champion") == "1"


def test_stale_expected_champion_exits_1_naming_both_and_changes_nothing(
    model: Model, tmp_path: Path
) -> None:
    env = base_env(tmp_path)
    model.set_alias("champion", 2)
    model.gate(3, champion="1")  # the gate compared against 1; 2 has won since
    done = run(["promote", *model.args("--version", "3")], env, tmp_path)
    assert done.returncode == 1
    assert (
        f"champion of '{model.name}' is version 2, not version 1 that the gate of version 3 "
        "compared against: another promotion won; re-run the gate of version 3 against "
        "version 2"
    ) in done.stderr
    assert model.alias("champion") == "2" and model.alias("previous-champion") is None
    assert model.evidence(3) == {}


def test_gate_verdicts_decide(model: Model, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    never = run(["promote", *model.args("--version", "1")], env, tmp_path)
    assert never.returncode == 2
    assert "--require-gate true needs --gate-report-digest" in never.stderr
    assert "the gate step's report-digest output" in never.stderr
    unreported = ["--gate-report-digest", "sha256:" + "1" * 64]
    nothing = run(["promote", *model.args("--version", "1", *unreported)], env, tmp_path)
    assert nothing.returncode == 2 and "was never gated: there is no " in nothing.stderr
    assert "mlsteps/gate/report.json" in nothing.stderr
    model.gate(2, verdict="rejected")
    rejected = run(["promote", *model.args("--version", "2")], env, tmp_path)
    assert rejected.returncode == 3 and "gate rejected version 2" in rejected.stderr
    assert model.digests["2"] in rejected.stderr
    assert model.alias("champion") is None
    # Without the gate, the expected champion must be said.
    bare = ["promote", *model.args("--version", "1", "--require-gate", "false")]
    assert run(bare, env, tmp_path).returncode == 2
    done = run([*bare, "--expected-champion", "none"], env, tmp_path)
    assert outputs(done)["decision"] == "promoted" and model.alias("champion") == "1"


def assert_refused(done: subprocess.CompletedProcess[str], model: Model, *words: str) -> None:
    """Exit 2 naming the cause; no alias moved and no evidence was written."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for text in words:
        assert text in done.stderr
    assert model.alias("champion") is None and model.alias("previous-champion") is None
    assert all(model.evidence(v) == {} for v in model.runs)


def test_a_training_that_tags_itself_pass_is_not_promoted(model: Model, tmp_path: Path) -> None:
    """The attack: the training holds the MLflow credentials, so it tags its run and its
    version as the gate would. No gate ran: promote refuses, whatever the tags say."""
    env = base_env(tmp_path)
    forged = {VERDICT_TAG: "pass", CHAMPION_TAG: "none", REPORT_DIGEST_TAG: "sha256:" + "a" * 64}
    batch = [{"key": k, "value": v} for k, v in forged.items()]
    model._post("runs/log-batch", {"run_id": model.runs["1"], "tags": batch})
    for key, value in forged.items():
        model._post(
            "model-versions/set-tag",
            {"name": model.name, "version": "1", "key": key, "value": value},
        )
    assert model.tags(1)[VERDICT_TAG] == "pass"
    done = run(["promote", *model.args("--version", "1")], env, tmp_path)
    assert_refused(done, model, "--gate-report-digest", "the gate step's report-digest output")
    # Handing on the digest the training tagged does not help: there is no report behind it.
    tagged = run(
        [
            "promote",
            *model.args("--version", "1", "--gate-report-digest", forged[REPORT_DIGEST_TAG]),
        ],
        env,
        tmp_path,
    )
    assert_refused(tagged, model, "was never gated")


def test_a_forged_report_with_its_own_digest_is_refused(model: Model, tmp_path: Path) -> None:
    """The training logs a report.json into its own run and computes its digest: the report
    passes, but about another version, or about another run; promote refuses both."""
    from steps.checks.report import canonical_json, digest

    env = base_env(tmp_path)
    one, two = model.report(1), model.report(2)
    for forged, words in (
        # another version (its run set to this version's, so only the version differs)
        ({**two, "candidate": {**two["candidate"], "run_id": model.runs["1"]}},
         "it judged version 2"),
        # this version, another run
        ({**one, "candidate": {**one["candidate"], "run_id": model.runs["2"]}},
         f"its candidate is of run {model.runs['2']}"),
        ({**one, "model": "another-model"}, "it is about model 'another-model'"),
    ):  # fmt: skip
        model.log_report(model.runs["1"], canonical_json(forged).encode())
        done = run(
            [
                "promote",
                *model.args("--version", "1", "--gate-report-digest", digest(forged)),
            ],
            env,
            tmp_path,
        )
        assert_refused(done, model, "is not what the gate report with this digest judged", words)


def test_a_report_changed_after_the_gate_or_a_wrong_digest_is_refused(
    model: Model, tmp_path: Path
) -> None:
    env = base_env(tmp_path)
    handed = model.gate(1, verdict="rejected")
    # Someone overwrites the rejected report with a pass after the gate step.
    from steps.checks.report import canonical_json

    model.log_report(model.runs["1"], canonical_json(model.report(1)).encode())
    done = run(["promote", *model.args("--version", "1")], env, tmp_path)
    assert handed in done.stderr
    assert_refused(done, model, "whose digest is sha256:", "the report was replaced since")
    wrong = run(
        ["promote", *model.args("--version", "1", "--gate-report-digest", "sha256:" + "0" * 64)],
        env,
        tmp_path,
    )
    assert_refused(wrong, model, "not the report of the gate step that gave this digest")
    for bad in ("sha256:" + "0" * 63, "md5:abc", "SHA256:" + "0" * 64):
        shaped = run(
            ["promote", *model.args("--version", "1", "--gate-report-digest", bad)], env, tmp_path
        )
        assert_refused(shaped, model, "--gate-report-digest", bad, "report-digest output")


def test_a_real_gate_pass_with_its_digest_is_promoted(model: Model, tmp_path: Path) -> None:
    """`mlsteps gate` itself judges version 2 against the champion (version 1) on the metrics
    the runs logged; its report-digest output is what promote is handed."""
    env = base_env(tmp_path)
    model.gate(1)
    outputs(run(["promote", *model.args("--version", "1")], env, tmp_path))
    gated = outputs(
        run(
            [
                "gate", "--tracking-uri", model.uri, "--name", model.name, "--model-uri",
                f"models:/{model.name}/2", "--metrics", "{accuracy: {min: 0.5}}",
            ],
            env,
            tmp_path,
        )
    )  # fmt: skip
    assert gated["decision"] == "pass" and gated["champion-version"] == "1"
    done = run(
        ["promote", *model.args("--version", "2", "--gate-report-digest", gated["report-digest"])],
        env,
        tmp_path,
    )
    assert outputs(done)["decision"] == "promoted"
    assert model.alias("champion") == "2" and model.alias("previous-champion") == "1"
    assert model.evidence(2)[EVIDENCE + "report-digest"] == gated["report-digest"]


def test_unknown_model_or_version_is_exit_2_with_the_fix(model: Model, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    digest = ["--gate-report-digest", "sha256:" + "1" * 64]
    missing = run(
        [
            "promote",
            "--tracking-uri",
            model.uri,
            "--name",
            "no-such-model",
            "--version",
            "1",
            *digest,
        ],
        env,
        tmp_path,
    )
    assert missing.returncode == 2
    assert "no registered model 'no-such-model'" in missing.stderr
    assert "mlsteps package" in missing.stderr
    nine = run(["promote", *model.args("--version", "9", *digest)], env, tmp_path)
    assert nine.returncode == 2 and f"model '{model.name}' has no version 9" in nine.stderr
    assert "newest is 3" in nine.stderr


def test_require_approval(model: Model, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    model.gate(1)
    refused = run(
        ["promote", *model.args("--version", "1", "--require-approval", "true")], env, tmp_path
    )
    assert refused.returncode == 2 and "--approved-by" in refused.stderr
    assert model.alias("champion") is None
    given = ["promote", *model.args("--version", "1", "--require-approval", "true")]
    done = run([*given, "--approved-by", "lead@example.org"], env, tmp_path)
    assert outputs(done)["decision"] == "promoted"
    assert model.evidence(1)[EVIDENCE + "approved-by"] == "lead@example.org"


class GitHubApprovals:
    """Stand-in for GitHub's REST API (no GitHub here): answers the approvals of one run as
    GitHub documents them, to the bearer token it was given; records what was asked."""

    def __init__(self, token: str, approvals: list[dict[str, Any]]) -> None:
        owner = self
        self.asked: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.asked.append(self.path)
                ok = self.headers.get("Authorization") == f"Bearer {token}"
                body = json.dumps(approvals if ok else {"message": "Bad credentials"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_require_approval_reads_the_github_runs_approvals(model: Model, tmp_path: Path) -> None:
    token = "ghs_" + uuid.uuid4().hex
    approvals = [
        {"state": "approved", "user": {"login": "octo-lead"}, "environments": [{"name": "prod"}]},
        {"state": "rejected", "user": {"login": "someone"}, "environments": [{"name": "prod"}]},
        # An approval of another environment of the run approved something else.
        {"state": "approved", "user": {"login": "intruder"}, "environments": [{"name": "dev"}]},
    ]
    model.gate(1)
    api = GitHubApprovals(token, approvals)
    # The attack: the run's only approval is of a lesser environment (dev, where anyone may
    # approve); the promote job's environment is prod.
    elsewhere = GitHubApprovals(token, [approvals[2]])
    try:
        github = dict(
            GITHUB_ACTIONS="true",
            GITHUB_REPOSITORY="acme/churn",
            GITHUB_RUN_ID="4242",
            GITHUB_SERVER_URL="https://github.example",
            GITHUB_OUTPUT=str(tmp_path / "out"),
        )
        bare = ["promote", *model.args("--version", "1", "--require-approval", "true")]
        args = [*bare, "--approval-environment", "prod"]
        no_token = run(args, base_env(tmp_path, **github, GITHUB_API_URL=api.url), tmp_path)
        # On GitHub the error is a workflow command (::error::) on stdout.
        assert no_token.returncode == 2 and "GITHUB_TOKEN" in no_token.stdout
        env = base_env(tmp_path, **github, GITHUB_TOKEN=token, GITHUB_API_URL=api.url)
        unnamed = run(bare, env, tmp_path)
        assert unnamed.returncode == 2 and "give --approval-environment NAME" in unnamed.stdout
        assert api.asked == []  # refused before anything was read
        refused = run(args, {**env, "GITHUB_API_URL": elsewhere.url}, tmp_path)
        assert refused.returncode == 2, refused.stdout
        assert (
            "nobody approved environment 'prod' (--approval-environment) in GitHub run 4242"
            in refused.stdout
        )
        assert elsewhere.asked == ["/repos/acme/churn/actions/runs/4242/approvals"]
        assert model.alias("champion") is None and model.evidence(1) == {}
        done = run(args, env, tmp_path)
        assert outputs(done)["decision"] == "promoted", done.stderr
        assert api.asked == ["/repos/acme/churn/actions/runs/4242/approvals"]
        evidence = model.evidence(1)
        assert evidence[EVIDENCE + "approved-by"] == "octo-lead"  # not the dev approver
        assert (
            evidence[EVIDENCE + "ci-run-url"]
            == "https://github.example/acme/churn/actions/runs/4242"
        )
        # The token is only ever registered as a mask (the runner hides it), never shown.
        shown = [x for x in done.stdout.splitlines() if not x.startswith("::add-mask::")]
        assert token not in "\n".join(shown) + done.stderr + (tmp_path / "out").read_text()
        assert f"::add-mask::{token}" in done.stdout
    finally:
        api.close()
        elsewhere.close()


def test_dry_run_reads_the_verdict_and_the_champion_and_touches_nothing(
    model: Model, tmp_path: Path
) -> None:
    env = base_env(tmp_path)
    model.set_alias("champion", 1)
    model.gate(2, champion="1")
    before = {v: model.tags(v) for v in model.runs}
    done = run(["--dry-run", "promote", *model.args("--version", "2")], env, tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    kinds = [a["kind"] for a in plan]
    assert kinds == [
        "mlflow.read-candidate", "lock.acquire", "alias.compare", "alias.set-previous",
        "alias.set", "version.tag", "lock.release",
    ]  # fmt: skip
    # What the run would find, read now: the version, its verified verdict, the champion.
    assert plan[0]["verdict"] == "pass" and plan[2]["champion"] == "1"
    assert (
        f"[read now: version 2 exists (run {model.runs['2']}); its gate report checks out: "
        "verdict pass, compared against version 1]"
    ) in done.stderr
    assert "[read now: 'champion' is version 1, as expected: the move would go ahead]" in (
        done.stderr
    )
    assert "read from the verified gate report" in done.stderr
    # It wrote nothing and took no lock.
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert {v: model.tags(v) for v in model.runs} == before
    assert not (tmp_path / "cache").exists()  # not even the lock file
    # The champion moved since the gate: the dry run says the run would fail.
    model.set_alias("champion", 3)
    moved = run(["--dry-run", "promote", *model.args("--version", "2")], env, tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "'champion' is version 3, not version 1: the run would exit 1" in moved.stderr
    model.set_alias("champion", 1)
    # A report that does not check out stops the dry run as it would stop the run.
    wrong = ["--gate-report-digest", "sha256:" + "0" * 64]
    bad = run(["--dry-run", "promote", *model.args("--version", "2", *wrong)], env, tmp_path)
    assert bad.returncode == 2 and "not the report of the gate step" in bad.stderr
    # The run applies the same actions, in the same order.
    applied = run(["promote", *model.args("--version", "2")], env, tmp_path)
    assert json.loads(applied.stdout)["applied"] == kinds
    assert model.alias("champion") == "2"


def test_dry_run_without_mlflow_still_shows_the_plan(model: Model, tmp_path: Path) -> None:
    args = [
        "--dry-run", "promote", "--tracking-uri", "http://127.0.0.1:9", "--name", model.name,
        "--version", "2", "--gate-report-digest", "sha256:" + "1" * 64,
    ]  # fmt: skip
    done = run(args, base_env(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "dry run: could not read MLflow to show what the run would find" in done.stderr
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in done.stderr
    assert [a["kind"] for a in json.loads(done.stdout)["plan"]][0] == "mlflow.read-candidate"


# ----- rollback -----------------------------------------------------------------------------


def test_rollback_round_trip_and_one_level_of_undo(model: Model, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    model.gate(1)
    model.gate(2, champion="1")
    outputs(run(["promote", *model.args("--version", "1")], env, tmp_path))
    outputs(run(["promote", *model.args("--version", "2")], env, tmp_path))
    moved = run(["rollback", *model.args("--expected-champion", "1")], env, tmp_path)
    assert moved.returncode == 1 and "it moved since" in moved.stderr
    assert model.alias("champion") == "2"
    back = outputs(run(["rollback", *model.args()], env, tmp_path))
    assert back == {
        "champion-version": "1",
        "previous-version": "2",
        "decision": "rolled-back",
        "sagemaker-model-package-arn": "",
    }
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert model.tags(2)["mlsteps.promote.rolled-back-to"] == "1"
    assert "mlsteps.promote.rolled-back-at" in model.tags(2)
    again = run(["rollback", *model.args()], env, tmp_path)
    assert again.returncode == 2 and "nothing to roll back" in again.stderr
    assert model.alias("champion") == "1"
    # Promote again: the gate's verdict of version 2 (against 1) holds once more.
    assert (
        outputs(run(["promote", *model.args("--version", "2")], env, tmp_path))["decision"]
        == "promoted"
    )


# ----- the race: 20 promotions at once ------------------------------------------------------


def race(model: Model, lock: list[str], env: dict[str, str], cwd: Path) -> str:
    """20 candidates gated against version 1 promoted at once; the winner."""
    model.gate(1)
    outputs(run(["promote", *model.args("--version", "1", *lock)], env, cwd))
    candidates = range(2, 22)
    for version in candidates:
        model.gate(version, champion="1")
    procs = {
        v: start(["promote", *model.args("--version", str(v), *lock)], env, cwd) for v in candidates
    }
    ended = {v: (p.communicate(timeout=300), p.returncode) for v, p in procs.items()}
    winners = [v for v, (_, code) in ended.items() if code == 0]
    assert len(winners) == 1, {v: (code, err[-400:]) for v, ((_, err), code) in ended.items()}
    winner = str(winners[0])
    assert model.alias("champion") == winner and model.alias("previous-champion") == "1"
    for version, ((_, err), code) in ended.items():
        if str(version) == winner:
            continue
        assert code == 1, err
        assert (
            f"champion of '{model.name}' is version {winner}, not version 1 that the gate of "
            f"version {version} compared against"
        ) in err
        assert model.evidence(version) == {}
    # Round trip: rollback restores version 1, and the winner can be promoted again.
    assert outputs(run(["rollback", *model.args(*lock)], env, cwd))["champion-version"] == "1"
    assert model.alias("champion") == "1"
    assert (
        outputs(run(["promote", *model.args("--version", winner, *lock)], env, cwd))["decision"]
        == "promoted"
    )
    assert model.alias("champion") == winner
    return winner


@pytest.fixture()
def many(mlflow_server: MlflowServer) -> Model:
    return Model(mlflow_server, 21)


def test_race_file_lock(many: Model, tmp_path: Path) -> None:
    path = tmp_path / "locks" / "race.lock"
    race(many, ["--lock-path", str(path)], base_env(tmp_path), tmp_path)
    assert file_is_free(path)


def vault_lock_env(vault: VaultServer, tmp_path: Path) -> dict[str, str]:
    """A token that may only use the lock keys: the policy promote's help documents."""
    name = vault_setup.policy(
        vault,
        "mlsteps-promote-locks",
        'path "secret/data/mlsteps/locks/*" { capabilities = ["create", "read", "update"] }',
    )
    token = vault_setup.token_with_policies(vault, [name])
    return base_env(tmp_path, VAULT_ADDR=vault.addr, VAULT_TOKEN=token)


def kv_record(vault: VaultServer, path: str) -> dict[str, Any]:
    read = vault_setup.client(vault).secrets.kv.v2.read_secret_version(
        path, mount_point="secret", raise_on_deleted_version=True
    )
    data: dict[str, Any] = read["data"]["data"]
    return data


def test_race_vault_lock(many: Model, vault_server: VaultServer, tmp_path: Path) -> None:
    key = f"mlsteps/locks/{many.name}"
    lock = ["--lock", "vault", "--lock-path", f"secret/{key}"]
    race(many, lock, vault_lock_env(vault_server, tmp_path), tmp_path)
    assert kv_record(vault_server, key)["holder"] == ""  # released


def dynamodb_table(moto: MotoServer) -> str:
    import boto3

    name = f"mlsteps-locks-{uuid.uuid4().hex[:8]}"
    client = boto3.client("dynamodb", endpoint_url=moto.url, **_aws(moto))
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _aws(moto: MotoServer) -> dict[str, str]:
    env = moto.env()
    return {
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


def dynamodb_items(moto: MotoServer, table: str) -> list[dict[str, Any]]:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=moto.url, **_aws(moto))
    items: list[dict[str, Any]] = client.scan(TableName=table)["Items"]
    return items


def test_race_dynamodb_lock_on_moto(many: Model, moto_server: MotoServer, tmp_path: Path) -> None:
    table = dynamodb_table(moto_server)
    env = base_env(tmp_path, **moto_server.env())
    race(many, ["--lock", "dynamodb", "--lock-path", table], env, tmp_path)
    assert dynamodb_items(moto_server, table) == []  # released: the item is gone


def test_dynamodb_missing_table_is_exit_2_with_how_to_create_it(
    model: Model, moto_server: MotoServer, tmp_path: Path
) -> None:
    model.gate(1)
    env = base_env(tmp_path, **moto_server.env())
    done = run(
        [
            "promote",
            *model.args("--version", "1", "--lock", "dynamodb", "--lock-path", "no-such-table"),
        ],
        env,
        tmp_path,
    )
    assert done.returncode == 2
    assert "--lock-path no-such-table: no such DynamoDB table" in done.stderr
    assert "aws dynamodb create-table --table-name no-such-table" in done.stderr
    assert model.alias("champion") is None


# ----- the lock's own paths -----------------------------------------------------------------


def held_record(holder: str, age: float, ttl: float) -> dict[str, Any]:
    now = time.time()
    return {
        "holder": holder,
        "purpose": "mlsteps promote of version 7",
        "acquired": now - age,
        "expires": now - age + ttl,
    }


def test_stale_vault_lock_is_taken_over_with_a_warning(
    model: Model, vault_server: VaultServer, tmp_path: Path
) -> None:
    key = f"mlsteps/locks/{model.name}"
    vault_setup.put_kv(vault_server, "secret", key, held_record("dead-host:4242:ab12", 900, 300))
    model.gate(1)
    lock = ["--lock", "vault", "--lock-path", f"secret/{key}"]
    done = run(
        ["promote", *model.args("--version", "1", *lock)],
        vault_lock_env(vault_server, tmp_path),
        tmp_path,
    )
    assert outputs(done)["decision"] == "promoted"
    assert "took over the stale lock" in done.stderr and "dead-host (pid 4242)" in done.stderr
    assert kv_record(vault_server, key)["holder"] == ""


def test_stale_dynamodb_lock_is_taken_over(
    model: Model, moto_server: MotoServer, tmp_path: Path
) -> None:
    import boto3

    table = dynamodb_table(moto_server)
    record = held_record("dead-host:77:cd34", 900, 300)
    boto3.client("dynamodb", endpoint_url=moto_server.url, **_aws(moto_server)).put_item(
        TableName=table,
        Item={
            "LockID": {"S": f"mlsteps/promote/{model.name}"},
            "holder": {"S": record["holder"]},
            "acquired": {"N": str(record["acquired"])},
            "expires": {"N": str(record["expires"])},
        },
    )
    model.gate(1)
    env = base_env(tmp_path, **moto_server.env())
    done = run(
        ["promote", *model.args("--version", "1", "--lock", "dynamodb", "--lock-path", table)],
        env,
        tmp_path,
    )
    assert outputs(done)["decision"] == "promoted"
    assert "took over the stale lock" in done.stderr and "dead-host (pid 77)" in done.stderr
    assert dynamodb_items(moto_server, table) == []


@pytest.fixture()
def held_file_lock(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A lock file this test process holds (flock), naming a live holder taken 30 s ago."""
    import fcntl

    path = tmp_path / "locks" / "held.lock"
    path.parent.mkdir()
    handle = path.open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(json.dumps(held_record("busy-host:555:ef56", 30, 300)))
    handle.flush()
    yield path, handle
    handle.close()


def test_timeout_waits_then_exits_1_naming_the_holder(
    model: Model, tmp_path: Path, held_file_lock: tuple[Path, Any]
) -> None:
    path, _ = held_file_lock
    model.gate(1)
    started = time.monotonic()
    done = run(
        [
            "promote",
            *model.args("--version", "1", "--lock-path", str(path), "--lock-timeout", "2s"),
        ],
        base_env(tmp_path),
        tmp_path,
    )
    assert done.returncode == 1 and time.monotonic() - started >= 2
    assert "waiting for the lock" in done.stderr
    assert "gave up waiting for the lock" in done.stderr
    assert "mlsteps promote of version 7 on busy-host (pid 555), taken 3" in done.stderr
    assert model.alias("champion") is None


def test_stuck_file_lock_holder_is_taken_over_after_the_ttl(
    model: Model, tmp_path: Path, held_file_lock: tuple[Path, Any]
) -> None:
    path, handle = held_file_lock
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(held_record("stuck-host:556:aa00", 900, 300)))
    handle.flush()
    model.gate(1)
    done = run(
        ["promote", *model.args("--version", "1", "--lock-path", str(path))],
        base_env(tmp_path),
        tmp_path,
    )
    assert outputs(done)["decision"] == "promoted"
    assert "took over the stale lock" in done.stderr and "stuck-host (pid 556)" in done.stderr
    assert file_is_free(path)


def test_sigterm_while_waiting_exits_143_holding_nothing(
    model: Model, vault_server: VaultServer, tmp_path: Path
) -> None:
    key = f"mlsteps/locks/{model.name}"
    busy = held_record("busy-host:555:ef56", 10, 300)
    vault_setup.put_kv(vault_server, "secret", key, busy)
    model.gate(1)
    proc = start(
        [
            "promote",
            *model.args("--version", "1", "--lock", "vault", "--lock-path", f"secret/{key}"),
        ],
        vault_lock_env(vault_server, tmp_path),
        tmp_path,
    )
    wait_for(proc, "waiting for the lock")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert kv_record(vault_server, key) == busy  # still the other holder's, untouched
    assert model.alias("champion") is None


def test_failure_inside_the_lock_puts_the_aliases_back_and_frees_it(
    model: Model, tmp_path: Path
) -> None:
    """MLflow refuses the evidence tag (over its 100,000-character limit) after both aliases
    moved: they are put back, no evidence stays, the lock is free. (The CI run's address is
    the one evidence value long enough: option values stop at 65,536 characters.)"""
    path = tmp_path / "p.lock"
    model.gate(1)
    model.gate(2, champion="1")
    env = base_env(tmp_path)
    outputs(
        run(["promote", *model.args("--version", "1", "--lock-path", str(path))], env, tmp_path)
    )
    done = run(
        ["promote", *model.args("--version", "2", "--lock-path", str(path))],
        {**env, "BUILD_URL": "https://ci.example/" + "x" * 100_001},
        tmp_path,
    )
    assert done.returncode == 1 and "MLflow refused tagging version 2" in done.stderr
    assert "put the aliases of" in done.stderr
    assert model.alias("champion") == "1" and model.alias("previous-champion") is None
    assert model.evidence(2) == {}
    assert file_is_free(path)


def test_mlflow_unreachable_inside_the_lock_is_exit_1_and_frees_it(
    model: Model, tmp_path: Path, held_file_lock: tuple[Path, Any]
) -> None:
    """The server goes away while promote waits for the lock: once it has the lock, reading
    the champion fails; exit 1, and the lock is free again."""
    path, handle = held_file_lock
    model.gate(1)
    relay = Relay(model.uri)
    proc = start(
        [
            "promote",
            "--tracking-uri",
            relay.url,
            "--name",
            model.name,
            "--version",
            "1",
            "--gate-report-digest",
            model.digests["1"],
            "--lock-path",
            str(path),
        ],
        base_env(tmp_path),
        tmp_path,
    )
    wait_for(proc, "waiting for the lock")
    relay.close()  # MLflow is now unreachable for this process
    handle.truncate(0)
    handle.close()  # frees the flock
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "cannot reach the MLflow tracking server" in err
    assert file_is_free(path)
    assert model.alias("champion") is None


class Relay:
    """A TCP relay to a real server (MLflow, moto) that the test can cut: the network between
    promote and the server going away (the server itself is shared by the session). Subclasses
    change what one connection does (`_relay`); the listening and the cutting stay here."""

    def __init__(self, target: str) -> None:
        import socket

        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[Any] = [self.listener]
        Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            self._relay(client, upstream)

    def _relay(self, client: Any, upstream: Any) -> None:
        """Both directions of one connection, each in a thread of its own."""
        for a, b in ((client, upstream), (upstream, client)):
            Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(2)

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(2)
            sock.close()


def test_rollback_with_no_champion_restores_the_previous_one(model: Model, tmp_path: Path) -> None:
    model.set_alias("previous-champion", 2)  # the champion alias was removed by hand
    done = outputs(run(["rollback", *model.args()], base_env(tmp_path), tmp_path))
    assert done == {
        "champion-version": "2",
        "previous-version": "",
        "decision": "rolled-back",
        "sagemaker-model-package-arn": "",
    }
    assert model.alias("champion") == "2" and model.alias("previous-champion") is None


def test_a_run_gated_before_it_was_registered_binds_by_the_logged_model(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """train → gate → package: the gate judged the run's logged model (its report names no
    version), then package registered it. The report is about the version when its logged
    model is the version's; another logged model of the same run is refused."""
    from steps.checks.report import canonical_json, digest

    model = Model(mlflow_server, 0)
    run_id = gate_setup.run_with_metrics(model.uri, {"accuracy": 0.9})
    experiment = requests.get(
        f"{model.uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10
    ).json()["run"]["info"]["experiment_id"]
    logged = [
        model._post(
            "logged-models", {"experiment_id": experiment, "name": name, "source_run_id": run_id}
        )["model"]["info"]["model_id"]
        for name in ("model", "other")
    ]
    # As package registers a logged model (steps/services/mlflow/model_versions.py).
    model._post(
        "model-versions/create",
        {"name": model.name, "source": f"models:/{logged[0]}", "run_id": run_id,
         "model_id": logged[0]},
    )  # fmt: skip
    model.runs["1"] = run_id
    env = base_env(tmp_path)
    for model_id, promoted in ((logged[1], False), (logged[0], True)):
        report = {
            **model.report(1),
            "model": None,  # gated without --name: judged alone
            "candidate": {"uri": f"runs:/{run_id}/model", "version": None, "run_id": run_id,
                          "model_id": model_id},
        }  # fmt: skip
        model.log_report(run_id, canonical_json(report).encode())
        args = ["promote", *model.args("--version", "1", "--gate-report-digest", digest(report))]
        done = run(args, env, tmp_path)
        if not promoted:
            assert_refused(done, model, "not the logged model version 1 was registered from")
            continue
        assert outputs(done)["decision"] == "promoted" and model.alias("champion") == "1"
