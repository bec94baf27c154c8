"""A failing training or command that printed its secrets, run with --verbose: the traceback
(whose exception message holds the last log lines) and the command's own output are masked on
the local and Jenkins faces, directly and through the `sh 'mlsteps secrets exec -- …'` route
vars/withVaultSecrets.txt recommends. On GitHub, exec fences its command's output so the
command cannot issue workflow commands.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.integration.test_secrets import Cli, awkward
from tests.leak_forms import leaked

pytestmark = pytest.mark.services

# Prints the secret (from the file train hands over, or the variable exec sets), then fails.
PRINT_AND_FAIL = (
    "import os, sys\n"
    "value = open(os.environ['S_FILE']).read() if 'S_FILE' in os.environ else os.environ['S']\n"
    "print('the secret is', value, flush=True)\n"
    "print('to stderr too:', value, file=sys.stderr, flush=True)\n"
    "sys.exit(3)\n"
)


def jenkins_env(cli: Cli) -> dict[str, str | None]:
    return {
        "JENKINS_URL": "http://jenkins.invalid/",
        "MLSTEPS_OUTPUTS_FILE": str(cli.cwd / "outputs.json"),
        "MLSTEPS_SUMMARY_FILE": str(cli.cwd / "summary.md"),
    }


def files_left(cli: Cli) -> str:
    return "".join(p.read_text() for p in cli.cwd.glob("*") if p.suffix in (".json", ".md"))


@pytest.mark.parametrize("face", ["local", "jenkins"])
def test_a_failing_training_that_printed_its_secret_shows_none_with_verbose(
    cli: Cli, face: str
) -> None:
    value = awkward(cli.uid)["MULTI"] + awkward(cli.uid)["JSON"]
    cli.hide(S=value)  # cli.run fails the test when any form of it shows
    env = {"S": value, **(jenkins_env(cli) if face == "jenkins" else {})}
    done = cli.run(
        "-v", "train", "--backend", "local", "--secret-env", "S",
        "--", sys.executable, "-c", PRINT_AND_FAIL, env=env,
    )  # fmt: skip
    assert done.code == 1, done
    assert "Traceback" in done.err and "StepFailed" in done.err, done  # the traceback is shown
    assert "training exited with code 3" in done.err and "the secret is ***" in done.err, done
    assert leaked(files_left(cli), {"S": value}) == []


@pytest.mark.parametrize("face", ["local", "jenkins"])
def test_exec_masks_what_its_command_prints_with_verbose(cli: Cli, face: str) -> None:
    values = awkward(cli.uid)
    cli.put("secret", f"{cli.uid}/app", values)
    env = {**cli.reader(), **(jenkins_env(cli) if face == "jenkins" else {})}
    done = cli.run(
        "-v", "secrets", "exec", "--secrets", f"secret/{cli.uid}/app MULTI | S",
        "--", sys.executable, "-c", PRINT_AND_FAIL, env=env,
    )  # fmt: skip
    assert done.code == 3, done
    assert "the secret is ***" in done.out and "to stderr too: ***" in done.err, done
    assert "Traceback" in done.err, done


def test_exec_around_a_verbose_training_masks_its_traceback(cli: Cli) -> None:
    # The route withVaultSecrets.txt recommends when values must not reach the controller:
    # sh 'mlsteps secrets exec -- mlsteps -v train …' — the training is not told which
    # variables are secret (no --secret-env), so only exec's masking stands in the way.
    values = awkward(cli.uid)
    cli.put("secret", f"{cli.uid}/app", values)
    train = [
        sys.executable, "-m", "steps", "-v", "train", "--backend", "local",
        "--", sys.executable, "-c", PRINT_AND_FAIL,
    ]  # fmt: skip
    done = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/app JSON | S", "--", *train,
        env={**cli.reader(), **jenkins_env(cli)},
    )  # fmt: skip
    assert done.code == 1, done
    assert "Traceback" in done.err and "the secret is ***" in done.err, done
    assert leaked(files_left(cli), values) == []


def test_exec_passes_binary_output_through_unchanged(cli: Cli) -> None:
    cli.put("secret", f"{cli.uid}/app", {"S": f"pw-{cli.uid}"})
    script = "import sys; sys.stdout.buffer.write(bytes(range(256)) + b'\\r\\nno newline')"
    proc = cli.start(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/app S", "--",
        sys.executable, "-c", script, env=cli.reader(),
    )  # fmt: skip
    # Read as bytes: text mode would translate the \r\n.
    assert proc.stdout is not None
    raw = proc.stdout.buffer.read()  # type: ignore[attr-defined]
    proc.wait(timeout=60)
    assert proc.returncode == 0
    assert bytes(range(256)) + b"\r\nno newline" in raw


def test_exec_fences_its_command_on_github(cli: Cli) -> None:
    # The command tries to issue workflow commands: inside the fence the runner ignores them.
    cli.put("secret", f"{cli.uid}/app", {"S": f"pw-{cli.uid}"})
    script = "print('::add-mask::x'); print('::set-output name=evil::1'); print('::error::boo')"
    # Not cli.run: its leak check would trip on the ::add-mask:: lines, which must hold values.
    proc = cli.start(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/app S", "--",
        sys.executable, "-c", script, env={**cli.reader(), "GITHUB_ACTIONS": "true"},
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    token = lines[start].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token), lines[start]
    end = lines.index(f"::{token}::")
    child = [lines.index(f) for f in ("::add-mask::x", "::set-output name=evil::1", "::error::boo")]
    assert all(start < i < end for i in child), out
    shown = "\n".join(line for line in lines if not line.startswith("::add-mask::"))
    assert leaked(shown + err, cli.hidden) == []


def test_exec_masks_nested_trimmed_and_uncoloured_forms(cli: Cli) -> None:
    inner = f"abc-{cli.uid}"
    values = {
        "A": inner,
        "B": f"PREFIX-{inner}-SUFFIX",  # holds A: masked whole, whichever is registered first
        "C": f"  spaced {cli.uid}  ",
        "D": f"\x1b[31mred-{cli.uid}\x1b[0m",
    }
    cli.put("secret", f"{cli.uid}/app", values)
    script = (
        "import os, re\n"
        "print('B:', os.environ['B'])\n"
        "print('C:', os.environ['C'].strip())\n"
        "print('D:', re.sub(r'\\x1b\\[[0-9;]*m', '', os.environ['D']))\n"
    )
    done = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/app *", "--",
        sys.executable, "-c", script, env=cli.reader(),
    )  # fmt: skip
    assert done.code == 0, done
    assert "B: ***\nC: ***\nD: ***\n" in done.out, done
    assert "PREFIX" not in done.out and "SUFFIX" not in done.out and "red-" not in done.out


def test_the_json_result_masks_its_outputs_as_the_other_channels_do(cli: Cli) -> None:
    # An output that holds a value (here the --file path names it): the terminal line, the
    # GitHub output and the Jenkins outputs file showed ***, the --json result showed it raw.
    value = f"pw-{cli.uid}"
    cli.put("secret", f"{cli.uid}/app", {"S": value})
    target = cli.cwd / f"{value}.env"
    done = cli.run(
        "--json", "secrets", "fetch", "--secrets", f"secret/{cli.uid}/app S", "--file",
        str(target), env=cli.reader(),
    )  # fmt: skip
    assert done.code == 0, done
    result = json.loads(done.out)
    assert result["outputs"]["file"] == str(cli.cwd / "***.env"), result
    assert target.exists()
    assert cli.run("secrets", "revoke", env=cli.reader()).code == 0
