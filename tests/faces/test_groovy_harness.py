"""jenkins/harness.groovy behaves as the Jenkins steps it stands in for, so what the vars/
tests show holds on a controller: sh fails on a non-zero exit unless asked for the status,
returns stdout on request, runs in the workspace; withEnv and withCredentials scope the
environment; error fails the build. A declarative Jenkinsfile runs its stages in order, skips
the rest after a failure, runs post, and calls the library's steps by their file names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.faces

SCRIPT = r"""
def call(Map config = [:]) {
    Map seen = [:]
    seen.status = sh(script: 'echo out; exit 3', returnStatus: true)
    seen.stdout = sh(script: 'printf "%s|%s" "$PWD" "${GREETING:-unset}"', returnStdout: true)
    withEnv(["GREETING=hello 'there'"]) {
        seen.inside = sh(script: 'printf %s "$GREETING"', returnStdout: true)
        seen.envInside = env.GREETING
    }
    seen.after = sh(script: 'printf %s "${GREETING:-unset}"', returnStdout: true)
    withCredentials([string(credentialsId: 'token', variable: 'TOKEN')]) {
        seen.secretLength = sh(script: 'printf %s "$TOKEN" | wc -c', returnStdout: true).trim()
    }
    seen.tokenAfter = env.TOKEN
    writeFile(file: 'sub/note.txt', text: 'written')
    seen.exists = fileExists('sub/note.txt')
    seen.read = readFile('sub/note.txt')
    seen.json = readJSON(text: '{"a": [1, 2]}')
    seen.buildTag = env.BUILD_TAG
    if (config.fail) {
        sh 'exit 4'
    }
    if (config.abort) {
        error 'stop here'
    }
    return seen
}
"""


@pytest.fixture
def probe_script(tmp_path: Path) -> Path:
    path = tmp_path / "probeStep.groovy"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def test_steps_behave_as_in_jenkins(run_jenkins: Any, probe_script: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "probeStep",
        {},
        script=probe_script,
        workspace=workspace,
        credentials={"token": "s3cr3t\nline two"},
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == {
        "status": 3,
        "stdout": f"{workspace}|unset",
        "inside": "hello 'there'",
        "envInside": "hello 'there'",
        "after": "unset",
        "secretLength": "15",
        "tokenAfter": None,
        "exists": True,
        "read": "written",
        "json": {"a": [1, 2]},
        "buildTag": "jenkins-faces-test-1",
    }
    assert (workspace / "sub" / "note.txt").read_text() == "written"
    # sh's output that is not returned goes to the console, with the -x trace.
    assert "+ echo out" in run.console
    assert [c["step"] for c in run.record["calls"]][:3] == ["probeStep", "sh", "sh"]
    # The secret reached the shell, but the record holds it masked.
    (secret_sh,) = [c for c in run.calls("sh") if "TOKEN" in c["env"]]
    assert secret_sh["env"]["TOKEN"] == "****"
    assert "s3cr3t" not in str(run.record)


def test_sh_without_return_status_fails_the_build(run_jenkins: Any, probe_script: Path) -> None:
    run = run_jenkins("probeStep", {"fail": True}, script=probe_script, credentials={"token": "x"})
    assert run.status == "FAILURE"
    assert run.error == "script returned exit code 4"
    assert run.returncode == 1


def test_error_fails_the_build_with_its_message(run_jenkins: Any, probe_script: Path) -> None:
    run = run_jenkins("probeStep", {"abort": True}, script=probe_script, credentials={"token": "x"})
    assert run.status == "FAILURE"
    assert run.error == "stop here"
    assert run.calls("error") == [{"step": "error", "args": {"message": "stop here"}}]


MASKING_SCRIPT = r"""
def call(Map config = [:], Closure body) {
    withCredentials([string(credentialsId: 'token', variable: 'TOKEN')]) {
        sh 'echo "credential: $TOKEN"'
    }
    List pairs = [[var: 'PW', password: 'hunter2']]
    wrap([$class: 'MaskPasswordsBuildWrapper', varPasswordPairs: pairs]) {
        withEnv(['PW=hunter2']) {
            sh 'echo "password: $PW"'
            echo "echoed: ${env.PW}"
            body()
        }
    }
    echo 'after: hunter2'
    return pwd(tmp: true)
}
"""


def test_masks_apply_to_the_console_while_their_block_runs(
    run_jenkins: Any, tmp_path: Path
) -> None:
    script = tmp_path / "maskStep.groovy"
    script.write_text(MASKING_SCRIPT, encoding="utf-8")
    workspace = tmp_path / "ws"
    run = run_jenkins(
        "maskStep",
        {},
        script=script,
        workspace=workspace,
        credentials={"token": "s3cr3t"},
        body="sh 'echo \"in the block: $PW\"'",
    )
    assert run.status == "SUCCESS", run.console
    assert run.result == f"{workspace}@tmp"
    # withCredentials' values show as ****, the Mask Passwords plugin's as ********, each
    # only inside its block (the sh -x trace included): Jenkins masks nothing after it.
    assert "credential: ****" in run.console
    assert "password: ********" in run.console
    assert "echoed: ********" in run.console
    assert "in the block: ********" in run.console
    assert "after: hunter2" in run.console
    assert "s3cr3t" not in run.console
    assert run.console.count("hunter2") == 1
    # The record holds the password's sha256, and the values nowhere (not even after the block).
    (wrap,) = run.calls("wrap")
    assert wrap["args"]["varPasswordPairs"] == [
        {"var": "PW", "passwordSha256": hashlib.sha256(b"hunter2").hexdigest()}
    ]
    record = json.dumps(run.record)
    assert "s3cr3t" not in record
    assert "hunter2" not in record


PIPELINE = r"""
// groovylint-disable-next-line CompileStatic, UnusedVariable, VariableName, VariableTypeRequired
@Library('probe') _

pipeline {
    agent any
    options {
        timeout(time: 30, unit: 'MINUTES')
    }
    environment {
        IMAGE = "img:${env.BUILD_TAG}"
    }
    stages {
        stage('One') {
            steps {
                sh 'echo "image is $IMAGE"'
                script {
                    env.ANSWER = helper()['answer']
                }
            }
        }
        stage('Two') {
            steps {
                echo "answer ${env.ANSWER}"
                script {
                    if (env.FAIL) {
                        error 'asked to fail'
                    }
                }
            }
        }
        stage('Three') {
            steps {
                echo 'three'
            }
        }
    }
    post {
        always {
            echo 'always'
        }
        success {
            echo 'succeeded'
        }
        failure {
            echo 'failed'
        }
    }
}

Map helper() {
    currentBuild.description = 'helped'
    return greet(who: 'outer') { greet(who: 'inner') }
}
"""

GREET = r"""
def call(Map config, Closure body = null) {
    echo "hello ${config.who}"
    return body ? body() : [answer: "${config.who}!"]
}
"""


@pytest.mark.parametrize("fail", [False, True], ids=["passes", "fails"])
def test_a_jenkinsfile_runs_its_stages_then_post(
    run_jenkinsfile: Any, tmp_path: Path, fail: bool
) -> None:
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(PIPELINE, encoding="utf-8")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "greet.groovy").write_text(GREET, encoding="utf-8")
    run = run_jenkinsfile(
        jenkinsfile,
        library=tmp_path / "lib",
        env={"BUILD_TAG": "b-7", **({"FAIL": "yes"} if fail else {})},
    )
    assert run.status == ("FAILURE" if fail else "SUCCESS"), run.console
    assert run.error == ("asked to fail" if fail else None)
    (pipeline,) = run.calls("pipeline")
    assert pipeline["args"] == {
        "agent": "any",
        "options": [{"option": "timeout", "args": {"time": 30, "unit": "MINUTES"}}],
    }
    stages = [(c["args"]["name"], c.get("skipped", False)) for c in run.calls("stage")]
    assert stages == [("One", False), ("Two", False), ("Three", fail)]
    post = [c["args"]["condition"] for c in run.calls("post")]
    assert post == ["always", "failure" if fail else "success"]
    # environment { } set env for the steps; a library step is called by its file's name and
    # hands back its block's value; env carries a value from one stage to the next.
    assert run.calls("sh")[0]["env"]["IMAGE"] == "img:b-7"
    assert [c["args"] for c in run.calls("greet")] == [{"who": "outer"}, {"who": "inner"}]
    assert "answer inner!" in run.console
    assert run.record["currentBuild"] == {
        "result": run.status,
        "currentResult": run.status,
        "description": "helped",
    }


# A library loaded whole, as Jenkins loads it: vars/ beside src/, whose classes a var imports and
# reaches the steps through (the script object it is given).
GREETER = r"""
package acme.lib

class Greeter implements Serializable {
    private final Object steps

    Greeter(Object steps) { this.steps = steps }

    @NonCPS
    static String shout(String text) { text.toUpperCase() }

    String greet(String who) {
        steps.echo("greeted ${who}")
        return steps.sh(script: "printf %s ${shout(who)}", returnStdout: true)
    }
}
"""

GREET_WITH_CLASS = r"""
import acme.lib.Greeter

def call(Map config) {
    return new Greeter(this).greet(config.who as String)
}
"""

PIPELINE_WITH_CLASS = r"""
@Library('lib') _
pipeline {
    agent any
    stages {
        stage('One') {
            steps {
                script {
                    echo "got ${greet(who: 'ada')}"
                }
            }
        }
    }
}
"""


@pytest.fixture
def library_with_src(tmp_path: Path) -> Path:
    """tmp/lib/vars/greet.groovy importing tmp/lib/src/acme/lib/Greeter.groovy; the vars dir."""
    (tmp_path / "lib" / "vars").mkdir(parents=True)
    (tmp_path / "lib" / "src" / "acme" / "lib").mkdir(parents=True)
    (tmp_path / "lib" / "src" / "acme" / "lib" / "Greeter.groovy").write_text(GREETER)
    (tmp_path / "lib" / "vars" / "greet.groovy").write_text(GREET_WITH_CLASS)
    return tmp_path / "lib" / "vars"


def test_a_var_uses_a_class_from_src_beside_vars(run_jenkins: Any, library_with_src: Path) -> None:
    run = run_jenkins("greet", {"who": "ada"}, script=library_with_src / "greet.groovy")
    assert run.status == "SUCCESS", run.console
    assert run.result == "ADA"
    assert [c["args"]["message"] for c in run.calls("echo")] == ["greeted ada"]


def test_a_jenkinsfile_library_brings_its_src(
    run_jenkinsfile: Any, library_with_src: Path, tmp_path: Path
) -> None:
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(PIPELINE_WITH_CLASS, encoding="utf-8")
    run = run_jenkinsfile(jenkinsfile, library=library_with_src)
    assert run.status == "SUCCESS", run.console
    assert [c["args"]["message"] for c in run.calls("echo")] == ["greeted ada", "got ADA"]


def test_a_var_whose_src_is_not_beside_it_fails_to_compile(
    run_jenkins: Any, library_with_src: Path, tmp_path: Path
) -> None:
    # The same var elsewhere: without src/ beside its vars/, the import does not resolve.
    (tmp_path / "alone").mkdir()
    alone = tmp_path / "alone" / "greet.groovy"
    alone.write_text((library_with_src / "greet.groovy").read_text())
    run = run_jenkins("greet", {"who": "ada"}, script=alone)
    assert run.status == "FAILURE"
    assert "unable to resolve class acme.lib.Greeter" in run.error
    assert run.calls("echo") == []
