"""The examples end to end, as written: examples/github-workflow.yml under act and
examples/Jenkinsfile under the Groovy harness, against real services. Each fetches the MLflow
token from OpenBao, builds the trainer image, trains the quickstart against MLflow, and packages
the model it logged: built on the trainer's base image, smoke-tested, pushed to a registry that
requires a login, registered as a version of the quickstart's model. Then it gates that version
against the champion with the quickstart's thresholds (the report in the summary, logged to the
run, archived in Jenkins) and, approved (GitHub: the run's approvals, read from a stand-in for
GitHub's API; Jenkins: the input step's answer), promotes it: the champion alias points at it,
with the approver recorded. Last it deploys the promoted version's image on the docker target:
an endpoint of the test's own (name and port), where nothing serves yet, so the image becomes its
first champion (no canary: nothing to compare with, and no client traffic under test); it then
answers the quickstart's traffic.py with no failed request. Afterwards no login token, trainer
image or serving image is left (but the endpoint's, which the test removes), the promotion lock
file and the endpoint's state are under the test's temporary directory, and no secret shows in a
log.

The first package build of the session installs the model's requirements into a dependencies
image (one to two minutes); the other example, and later sessions, find it by its cache key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import vault_setup as vs
from tests.faces import vault_checks
from tests.faces.conftest import NOT_CHECKED_OUT
from tests.faces.examples_setup import (
    DeployedEndpoint,
    GitHubApprovals,
    alias_version,
    docker_login,
    version_tags,
)
from tests.faces.secrets_setup import leaks_in

pytestmark = [pytest.mark.faces, pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MODEL_NAME = "quickstart-classifier"  # model.name in examples/quickstart/mlsteps.yaml
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def mlflow_get(uri: str, path: str, **params: str) -> dict[str, Any]:
    response = requests.get(f"{uri}/api/2.0/mlflow/{path}", params=params, timeout=10)
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def mlflow_token(vault_server: Any) -> str:
    """A new MLflow token at the path both examples read."""
    token = f"mlflow-token-{uuid.uuid4().hex}"
    vs.put_kv(vault_server, "secret", "ml/quickstart", {"mlflow-token": token})
    return token


def image_tags(repository: str) -> list[str]:
    return subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def assert_delivered(
    mlflow_uri: str, registry: Any, run_id: str, image_ref: str, version: str
) -> None:
    """The image is in the registry under the digest in image_ref, the model version of the
    run train made carries that reference, and the runner keeps no copy of the image."""
    repository, digest = image_ref.split("@")
    assert repository == f"{registry.address}/{MODEL_NAME}"
    manifest = requests.get(
        f"http://{registry.address}/v2/{MODEL_NAME}/manifests/{digest}",
        headers={"Accept": MANIFEST_TYPES},
        # bytes: requests would encode a str password as latin-1, the engine sends UTF-8
        auth=(registry.username.encode(), registry.password.encode()),
        timeout=10,
    )
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["Docker-Content-Digest"] == digest
    got = mlflow_get(mlflow_uri, "model-versions/get", name=MODEL_NAME, version=version)
    model_version = got["model_version"]
    assert model_version["run_id"] == run_id
    tags = {t["key"]: t["value"] for t in model_version.get("tags", [])}
    assert tags["image"] == image_ref
    # load: false in both examples: pushed, then removed from the runner's engine. Deploy
    # pulled it back by its digest (untagged), to serve it.
    assert [tag for tag in image_tags(repository) if not tag.endswith(":<none>")] == []


def assert_gated_and_promoted(mlflow_uri: str, version: str, approver: str) -> None:
    """The gate passed the version (its tags) and promote made it the champion, recording the
    approver and the gate report's digest."""
    tags = version_tags(mlflow_uri, MODEL_NAME, version)
    assert tags["mlsteps.gate.verdict"] == "pass"
    assert alias_version(mlflow_uri, MODEL_NAME, "champion") == version
    assert tags["mlsteps.promote.approved-by"] == approver
    assert tags["mlsteps.promote.report-digest"] == tags["mlsteps.gate.report-digest"]
    previous = tags["mlsteps.promote.previous-version"]
    if previous != "none":  # the other example, or an earlier run, promoted before this one
        assert alias_version(mlflow_uri, MODEL_NAME, "previous-champion") == previous


def lock_file(cache: Path) -> Path:
    """Where the quickstart's file lock (promote: lock: file) is under XDG_CACHE_HOME=cache."""
    return cache / "mlsteps" / "locks" / f"{MODEL_NAME}.lock"


@pytest.fixture
def deployed_endpoint(docker_client: Any) -> Iterator[Callable[[Path], DeployedEndpoint]]:
    """deployed_endpoint(cache): the endpoint an example's deploy makes, removed afterwards."""
    made: list[DeployedEndpoint] = []

    def make(cache: Path) -> DeployedEndpoint:
        made.append(DeployedEndpoint(docker_client, cache))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.tear_down()


def assert_first_deploy(
    deployed: dict[str, str], summary: str, endpoint: DeployedEndpoint, image_ref: str
) -> None:
    """Deploy's outputs for an endpoint that had nothing serving: the image is its champion,
    serving everything, with a report (where mlsteps.yaml's report-dir says; the summary is its
    markdown) saying why there was no canary."""
    assert deployed["decision"] == "rolled-out"
    assert deployed["endpoint"] == endpoint.url
    assert deployed["variant-weights"] == "champion=100"
    report_md = Path(deployed["report"])
    assert report_md.parts[-5:] == ("examples", "quickstart", ".mlsteps", "deploy", "report.md")
    assert_first_deploy_report(summary)
    endpoint.check(image_ref)


def assert_first_deploy_report(markdown: str) -> None:
    assert markdown.startswith("## mlsteps deploy: rolled-out\n"), markdown
    assert "first deploy: the endpoint had no champion to compare with" in markdown


def test_example_workflow_runs_end_to_end(
    run_act: Any,
    trainer_image: str,
    mlflow_server: Any,
    docker_client: Any,
    vault_server: Any,
    auth_registry: Any,
    deployed_endpoint: Callable[[Path], DeployedEndpoint],
    tmp_path: Path,
) -> None:
    # The example logs in to Vault with the job's GitHub OIDC token. The runner's id-token
    # service is played by vault_setup.GitHubOidcEndpoint (no runner here): it hands out JWTs
    # signed by a key this test made, which the real OpenBao server's JWT auth trusts, for a
    # role bound to the repository the tokens name.
    issuer = vs.JwtIssuer()
    reader = vs.read_policy(vault_server, "example-train", ["secret/data/ml/quickstart"])
    issuer.configure(
        vault_server,
        role="mlsteps-train",
        bound_claims={"repository": "mlsteps/demo"},
        policies=[reader],
    )
    token = mlflow_token(vault_server)
    example = (REPO / "examples" / "github-workflow.yml").read_text(encoding="utf-8")
    # Other tests log in at jwt/ too; the run must leave no token of its own.
    tokens_before = set(
        vault_checks.login_tokens(vault_server.addr, vault_server.root_token, "jwt")
    )
    # The promote job's environment has a required reviewer who approved (act has no
    # environments): mlsteps reads it with the job's token (github.token, which act takes from
    # the secret GITHUB_TOKEN) from GitHub's API, played here by a stand-in.
    github_token = f"ghs_{uuid.uuid4().hex}"
    # act runs the steps with its own XDG_CACHE_HOME: the test's temporary directory.
    endpoint = deployed_endpoint(tmp_path / "act-cache")
    with (
        vs.GitHubOidcEndpoint(issuer, repository="mlsteps/demo") as oidc,
        GitHubApprovals(github_token, ["release-lead"]) as github,
    ):
        result = run_act(
            example,
            variables={
                "MLFLOW_TRACKING_URI": mlflow_server.uri,
                "VAULT_ADDR": vault_server.addr,
                "IMAGE_REGISTRY": auth_registry.address,
                "IMAGE_REGISTRY_USERNAME": auth_registry.username,
                "DEPLOY_ENDPOINT": endpoint.name,
                "DEPLOY_LISTEN": endpoint.listen,
            },
            secrets={
                "IMAGE_REGISTRY_PASSWORD": auth_registry.password,
                "GITHUB_TOKEN": github_token,
            },
            env={
                **oidc.env(),
                "GITHUB_API_URL": github.url,
                # The runner's Docker login, which deploy pulls the pushed image with.
                "DOCKER_CONFIG": str(docker_login(tmp_path / "docker-config", auth_registry)),
            },
            timeout=1200,
        )
    assert result.returncode == 0, f"{result.annotations}\n{result.results}\n{result.log}"
    # train: checkout (copied in), build, secrets, train, package, gate, report, remove the
    # image, revoke; promote: checkout ("0" too), secrets, promote, report, deploy, report,
    # revoke. All ran and succeeded (deploy exited 0).
    named = {"train", "package", "gate", "promote-secrets", "promote", "champion", "deploy"}
    assert named | {"deployed", "promote-revoke"} <= set(result.results), result.results
    assert len(result.results) == 15, result.results
    assert set(result.results.values()) == {"success"}, result.results
    # One login per job with the OIDC token; the if: always() steps revoked the tokens.
    assert len(oidc.tokens) == 2
    (asked,) = github.asked
    assert asked.startswith("GET /repos/") and asked.endswith("/actions/runs/1/approvals")
    tokens_after = vault_checks.login_tokens(vault_server.addr, vault_server.root_token, "jwt")
    assert set(tokens_after) <= tokens_before
    assert (
        leaks_in(
            {
                "MLflow token": token,
                "registry password": auth_registry.password,
                "GitHub token": github_token,
            },
            result.log,
            result.stderr,
        )
        == []
    )
    outputs = result.outputs["train"]
    run = mlflow_get(mlflow_server.uri, "runs/get", run_id=outputs["run-id"])["run"]
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["run_name"].startswith("train-")

    packaged = result.outputs["package"]
    assert packaged["image-ref"] == f"{auth_registry.address}/{MODEL_NAME}@{packaged['digest']}"
    assert_delivered(
        mlflow_server.uri,
        auth_registry,
        outputs["run-id"],
        packaged["image-ref"],
        packaged["model-version"],
    )
    # The report step shows what was delivered.
    assert f"model version {packaged['model-version']}: {packaged['image-ref']}" in result.log

    # The gate judged the registered version (its report in the job summary), the promote job
    # moved the champion to it with the reviewer's approval.
    gate = result.outputs["gate"]
    assert gate["decision"] == "pass"
    assert gate["candidate-version"] == packaged["model-version"]
    assert gate["failed"] == "0"
    assert "accuracy" in result.summaries["gate"] and "roc_auc" in result.summaries["gate"]
    promoted = result.outputs["promote"]
    assert promoted["decision"] == "promoted"
    assert promoted["champion-version"] == packaged["model-version"]
    assert promoted["previous-version"] == gate["champion-version"]
    # promote checked the gate step's report digest, handed on through the train job's outputs.
    assert (
        version_tags(mlflow_server.uri, MODEL_NAME, packaged["model-version"])[
            "mlsteps.promote.report-digest"
        ]
        == gate["report-digest"]
    )
    assert f"champion is version {packaged['model-version']} (promoted" in result.log
    assert_gated_and_promoted(mlflow_server.uri, packaged["model-version"], "release-lead")
    assert lock_file(tmp_path / "act-cache").is_file()

    # Deploy: nothing served at the test's endpoint, so the promoted image is its first
    # champion, serving all traffic.
    deployed = result.outputs["deploy"]
    assert_first_deploy(deployed, result.summaries["deploy"], endpoint, packaged["image-ref"])
    assert f"deploy rolled-out, {endpoint.url} serves champion=100" in result.log
    # The if: always() step removed the image built for the run; the trainer's own tag stays.
    assert image_tags("quickstart-trainer") == []
    assert docker_client.images.get(trainer_image)


def test_example_jenkinsfile_runs_end_to_end(
    run_jenkinsfile: Any,
    mlsteps_cli: str,
    trainer_image: str,
    mlflow_server: Any,
    docker_client: Any,
    vault_server: Any,
    auth_registry: Any,
    deployed_endpoint: Callable[[Path], DeployedEndpoint],
    tmp_path: Path,
) -> None:
    # The Jenkinsfile logs in with an AppRole at approle/ whose ids are Secret text credentials.
    reader = vs.read_policy(vault_server, "example-jenkins", ["secret/data/ml/quickstart"])
    role_id, secret_id = vs.approle(vault_server, "mlsteps-example", [reader], token_ttl="10m")
    token = mlflow_token(vault_server)
    tokens_before = set(
        vault_checks.login_tokens(vault_server.addr, vault_server.root_token, "approle")
    )
    # The checkout: the build runs from the workspace root, as the Jenkinsfile's paths expect.
    workspace = tmp_path / "ws"
    shutil.copytree(REPO / "examples", workspace / "examples", ignore=NOT_CHECKED_OUT)
    build_tag = f"jenkins-mlsteps-example-{uuid.uuid4().hex[:8]}"
    endpoint = deployed_endpoint(tmp_path / "cache")
    credentials = {
        "vault-role-id": role_id,
        "vault-secret-id": secret_id,
        "image-registry": {"username": auth_registry.username, "password": auth_registry.password},
    }
    run = run_jenkinsfile(
        REPO / "examples" / "Jenkinsfile",
        workspace=workspace,
        env={
            "BUILD_TAG": build_tag,
            "VAULT_ADDR": vault_server.addr,
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            "IMAGE_REGISTRY": auth_registry.address,
            "IMAGE_REGISTRY_CREDENTIALS_ID": "image-registry",
            "PROMOTE_APPROVERS": "release-lead,ops",
            "DEPLOY_ENDPOINT": endpoint.name,
            "DEPLOY_LISTEN": endpoint.listen,
        },
        credentials=credentials,
        # the agent's mlsteps: the one installed beside the tests; its cache (the promotion's
        # file lock, the endpoint's state) under this test's temporary directory; its Docker
        # login, which deploy pulls the pushed image with
        extra_env={
            "PATH": f"{Path(mlsteps_cli).parent}:{os.environ['PATH']}",
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "DOCKER_CONFIG": str(docker_login(tmp_path / "docker-config", auth_registry)),
        },
        # the Promote stage's input step: release-lead presses Promote
        answers=[{"submitter": "release-lead"}],
        timeout=1200,
    )
    assert run.status == "SUCCESS", run.console
    stages = [(c["args"]["name"], c.get("skipped", False)) for c in run.calls("stage")]
    assert stages == [
        ("Build the trainer image", False),
        ("Train", False),
        ("Package", False),
        ("Gate", False),
        ("Promote", False),
        ("Deploy", False),
    ]
    assert [c["args"]["condition"] for c in run.calls("post")] == ["always"]

    # The exact `mlsteps package` call: the model Train logged (carried in env.MODEL_URI),
    # the file, the registry and load: false as flags; the tracking URI in the environment;
    # the registry credential bound to the environment only (the record shows it masked), and
    # the MLflow token from this stage's own Vault login (masked by Mask Passwords).
    (package,) = [c for c in run.calls("sh") if c["args"].get("label") == "mlsteps package"]
    model_uri = package["env"]["MODEL_URI"]
    assert model_uri.startswith("models:/")
    assert package["args"]["script"] == (
        "'mlsteps' '--ci' 'jenkins' '--config' 'examples/quickstart/mlsteps.yaml' 'package'"
        f" '--model-uri' '{model_uri}' '--registry' '{auth_registry.address}'"
        " '--load' 'false'"
    )
    assert package["env"]["MLSTEPS_MLFLOW_TRACKING_URI"] == mlflow_server.uri
    assert package["env"]["MLSTEPS_PACKAGE_REGISTRY_USERNAME"] == "****"
    assert package["env"]["MLSTEPS_PACKAGE_REGISTRY_PASSWORD"] == "****"
    assert package["env"]["MLFLOW_TRACKING_TOKEN"] == "********"
    (packaged,) = run.calls("mlPackage")
    assert packaged["args"]["registryCredentialsId"] == "image-registry"
    # Five logins, one per stage that needs the token; all revoked when their block ended.
    assert (
        len([c for c in run.calls("sh") if c["args"].get("label") == "mlsteps secrets fetch"]) == 5
    )
    tokens_after = vault_checks.login_tokens(vault_server.addr, vault_server.root_token, "approle")
    assert set(tokens_after) <= tokens_before

    # What the build says it delivered, and what the services hold.
    (delivered,) = [
        c["args"]["message"]
        for c in run.calls("echo")
        if c["args"]["message"].startswith("model version ")
    ]
    version, image_ref = delivered.removeprefix("model version ").split(": ")
    run_id = run.record["currentBuild"]["description"].split()[2].rstrip(";")
    assert run.record["currentBuild"]["description"] == (
        f"MLflow run {run_id}; model version {version}; champion {version}; "
        f"rolled-out at {endpoint.url}"
    )
    assert_delivered(mlflow_server.uri, auth_registry, run_id, image_ref, version)

    # Gate: the registered version, the file's thresholds; its report archived from the
    # quickstart's report-dir (.mlsteps/gate beside mlsteps.yaml).
    (gate,) = [c for c in run.calls("sh") if c["args"].get("label") == "mlsteps gate"]
    assert gate["args"]["script"] == (
        "'mlsteps' '--ci' 'jenkins' '--config' 'examples/quickstart/mlsteps.yaml' 'gate'"
        f" '--model-uri' 'models:/{MODEL_NAME}/{version}'"
    )
    assert gate["env"]["MLFLOW_TRACKING_TOKEN"] == "********"
    report_dir = "examples/quickstart/.mlsteps/gate"
    (archived,) = [c for c in run.calls("archiveArtifacts") if report_dir in c["args"]["artifacts"]]
    assert archived["args"]["artifacts"].split(",") == [
        f"{report_dir}/report.{ext}" for ext in ("md", "json", "png")
    ]
    assert "accuracy" in (workspace / report_dir / "report.md").read_text(encoding="utf-8")
    assert any(c["args"]["message"].startswith("gate: pass against ") for c in run.calls("echo"))

    # Promote: asked first (outside the Vault login), then the approver passed to mlsteps.
    (asked,) = run.calls("input")
    assert asked["args"] == {
        "message": f"Promote version {version} of {MODEL_NAME} to champion?",
        "ok": "Promote",
        "submitterParameter": "approver",
        "submitter": "release-lead,ops",
    }
    (promote,) = [c for c in run.calls("sh") if c["args"].get("label") == "mlsteps promote"]
    # The gate's report digest, handed from the Gate stage to the Promote stage by the build.
    digest = version_tags(mlflow_server.uri, MODEL_NAME, version)["mlsteps.gate.report-digest"]
    assert promote["args"]["script"] == (
        "'mlsteps' '--ci' 'jenkins' '--config' 'examples/quickstart/mlsteps.yaml' 'promote'"
        f" '--version' '{version}' '--gate-report-digest' '{digest}'"
        " '--require-approval' 'true' '--approved-by' 'release-lead'"
    )
    steps = [c["step"] for c in run.record["calls"]]
    assert steps.index("input") < steps.index("mlPromote")
    assert_gated_and_promoted(mlflow_server.uri, version, "release-lead")
    assert lock_file(tmp_path / "cache").is_file()

    # Deploy: the promoted version's image (package's image-ref, carried in env.IMAGE_REF) on
    # the test's endpoint, given by the build's environment; nothing served there, so it is the
    # first champion. Its outputs feed the build's log and description; its report archived.
    (deploy,) = [c for c in run.calls("sh") if c["args"].get("label") == "mlsteps deploy"]
    assert deploy["args"]["script"] == (
        "'mlsteps' '--ci' 'jenkins' '--config' 'examples/quickstart/mlsteps.yaml' 'deploy'"
        f" '--image' '{image_ref}' '--endpoint' '{endpoint.name}'"
        f" '--listen' '{endpoint.listen}' '--version' '{version}'"
    )
    assert deploy["env"]["MLFLOW_TRACKING_TOKEN"] == "********"
    assert steps.index("mlPromote") < steps.index("mlDeploy")
    assert f"deploy: rolled-out; {endpoint.url} serves champion=100" in [
        c["args"]["message"] for c in run.calls("echo")
    ]
    deploy_dir = "examples/quickstart/.mlsteps/deploy"
    archived_reports = [c["args"]["artifacts"] for c in run.calls("archiveArtifacts")]
    assert f"{deploy_dir}/*" in archived_reports
    report = json.loads((workspace / deploy_dir / "report.json").read_text(encoding="utf-8"))
    assert report["decision"] == "rolled-out"
    assert_first_deploy_report((workspace / deploy_dir / "report.md").read_text(encoding="utf-8"))
    endpoint.check(image_ref)
    assert (
        leaks_in(
            {
                "MLflow token": token,
                "registry password": auth_registry.password,
                "role id": role_id,
                "secret id": secret_id,
            },
            run.console,
            json.dumps(run.record),
        )
        == []
    )
    # post { always } removed the image built for the build; the trainer's own tag stays.
    assert image_tags(f"quickstart-trainer:{build_tag}") == []
    assert docker_client.images.get(trainer_image)
