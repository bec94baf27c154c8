"""Attacks on the pipe `secrets exec` puts between its command and the log, against the real
OpenBao server: a secret cut by a line too long to hold, secrets that overlap, output written
in pieces on both streams, a last line without its end (on GitHub it would hide the fence's
end), a background process that writes after the command ended (outside the fence), a reader
that goes away (`| head`), and a command that dies by a signal while a daemon keeps the pipe.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from steps.core.secret import mask_lines
from steps.secrets.execute import MAX_PENDING
from tests.integration.test_secrets import Cli, Done, leases_under, live_logins

pytestmark = pytest.mark.services


def exec_args(cli: Cli, script: str, *names: str) -> list[str]:
    return [
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/app " + ("*" if not names else names[0]),
        "--", sys.executable, "-c", script,
    ]  # fmt: skip


@pytest.mark.parametrize("offset", [-7, 0, 3, (1 << 16) - 5, (1 << 16) + 1])
def test_a_secret_cut_by_a_line_too_long_to_hold_is_still_masked(cli: Cli, offset: int) -> None:
    # The pump holds at most MAX_PENDING bytes of a line; the secret sits where it must cut.
    value = f"ünïcode-SECRET-{cli.uid}"
    cli.put("secret", f"{cli.uid}/app", {"S": value})
    script = (
        "import os, sys\n"
        f"sys.stdout.write('x' * {MAX_PENDING + offset} + os.environ['S'] + 'y' * 70000)\n"
        f"sys.stderr.write('z' * {MAX_PENDING + offset} + os.environ['S'] + '\\n')\n"
    )
    done = cli.run(*exec_args(cli, script), env=cli.reader())  # fails on any form of the value
    assert done.code == 0, done
    for text, before, after in ((done.out, "x", "y" * 70000), (done.err, "z", "")):
        assert before * (MAX_PENDING + offset) + "***" + after in text, len(text)


def test_overlapping_secrets_are_hidden_as_one(cli: Cli) -> None:
    # Replaced one after the other, abcd+cdef in "abcdef" showed ***ef: the second's tail.
    first, second = f"head-{cli.uid}-MIDDLE", f"MIDDLE-tail-{cli.uid}"
    cli.put("secret", f"{cli.uid}/app", {"A": first, "B": second})
    script = "import os; print('[' + os.environ['A'] + '-tail-' + os.environ['B'][12:] + ']')"
    done = cli.run(*exec_args(cli, script), env=cli.reader())
    assert done.code == 0, done
    assert "[***]" in done.out and "tail" not in done.out and "head" not in done.out, done


@pytest.mark.parametrize(
    "value",
    [
        "Q",  # one character
        "true",  # an ordinary word
        "  padded {uid}  ",
        "line one {uid}\r\nline two {uid}\rthree {uid}",
        '{{"k": "v-{uid}", "q": "it\'s \\"x\\" 100% {uid}"}}',
        "\x1b[1;31mred-{uid}\x1b[0m",
        "日本語-🔑-{uid}",
    ],
)
def test_awkward_secrets_written_in_pieces_on_both_streams_never_show(cli: Cli, value: str) -> None:
    value = value.format(uid=cli.uid)
    cli.put("secret", f"{cli.uid}/app", {"S": value})
    # A byte at a time, flushed, the two streams interleaved, a last line without its end:
    # a masker that looks at what it was handed at once would see no secret at all.
    script = (
        "import os, sys, time\n"
        "data = ('pre ' + os.environ['S'] + ' post\\n') * 3 + os.environ['S']\n"
        "for i, ch in enumerate(data.encode()):\n"
        "    for stream in (sys.stdout.buffer, sys.stderr.buffer):\n"
        "        stream.write(bytes([ch])); stream.flush()\n"
        "    if i % 50 == 0: time.sleep(0.001)\n"
        "for stream in (sys.stdout, sys.stderr):\n"
        "    stream.write(os.environ['S']); stream.flush()\n"
    )
    done = cli.run(*exec_args(cli, script), env=cli.reader())
    assert done.code == 0, done
    # A one-character value too is masked wherever it shows, as on the runners.
    assert "pre ***" in done.out and "pre ***" in done.err, done
    assert [form for form in mask_lines(value) if form in done.out + done.err] == []


def fence(out: str) -> tuple[list[str], int, int]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    token = lines[start].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token), lines[start]
    return lines, start, lines.index(f"::{token}::")  # ValueError: the fence never ends


def test_a_last_line_without_its_end_does_not_hide_the_fences_end_on_github(cli: Cli) -> None:
    # "partial::TOKEN::" is no workflow command: the runner would ignore commands for good.
    cli.put("secret", f"{cli.uid}/app", {"S": f"pw-{cli.uid}"})
    script = "import sys; sys.stdout.write('partial'); sys.stderr.write('also partial')"
    proc = cli.start(*exec_args(cli, script), env={**cli.reader(), "GITHUB_ACTIONS": "true"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines, start, end = fence(out)
    assert start < lines.index("partial") < end and start < lines.index("also partial") < end


def test_a_background_process_writing_after_the_command_ended_stays_inside_the_fence(
    cli: Cli,
) -> None:
    # The command ends; a process it left behind prints a workflow command once mlsteps has
    # closed the fence. It must not reach the log unfenced (nor hold mlsteps up).
    cli.put("secret", f"{cli.uid}/app", {"S": f"pw-{cli.uid}"})
    script = (
        "import subprocess\n"
        "subprocess.Popen(['sh', '-c', 'echo early-daemon; sleep 5; echo ::error::late-daemon'])\n"
        "print('command done')\n"
    )
    started = time.monotonic()
    proc = cli.start(*exec_args(cli, script), env={**cli.reader(), "GITHUB_ACTIONS": "true"})
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, err
    lines, start, end = fence(out)
    assert start < lines.index("early-daemon") < end and start < lines.index("command done") < end
    assert "late-daemon" not in out + err
    assert "a process it started still holds its output open" in out, out
    assert seconds < 5, seconds  # the grace (3 s) for both streams, not one each
    time.sleep(1)  # the daemon's late write hit a closed pipe: nothing lingers to show it


@pytest.mark.parametrize(
    ("command", "reader", "codes"),
    [
        # `yes` gets SIGPIPE as it would alone (128+13).
        ("yes y", "head -2", "141 0"),
        # The command's last line has no end and the reader is gone when mlsteps ends it.
        (
            f'{sys.executable} -c \'import sys, time; print("y"); sys.stdout.write("y" * 9); '
            "sys.stdout.flush(); time.sleep(0.5)'",
            "head -c 3",
            "0 0",
        ),
    ],
)
def test_exec_into_a_reader_that_goes_away_ends_like_the_command_alone(
    cli: Cli, command: str, reader: str, codes: str
) -> None:
    cli.put("secret", f"{cli.uid}/app", {"S": f"pw-{cli.uid}"})
    mlsteps = " ".join([sys.executable, "-m", "steps", "-q", "secrets", "exec", "--secrets",
                        f"'secret/{cli.uid}/app S'", "--", command])  # fmt: skip
    done = subprocess.run(
        ["bash", "-c", f"{mlsteps} | {reader}; codes=${{PIPESTATUS[*]}}; echo; echo codes $codes"],
        capture_output=True, text=True, timeout=60, cwd=cli.cwd, env=cli.env(cli.reader()),
    )  # fmt: skip
    assert done.stdout.startswith("y\ny"), done.stdout
    assert done.stdout.splitlines()[-1] == f"codes {codes}", done
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr, done


def test_a_command_killed_by_a_signal_with_a_daemon_on_the_pipe_still_revokes(
    cli: Cli, dynamic: tuple[str, str, str, str]
) -> None:
    creds, mount, role_id, secret_id = dynamic
    script = (
        "import os, signal, subprocess\n"
        "subprocess.Popen(['sleep', '30'])  # keeps stdout and stderr open\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    started = time.monotonic()
    done = cli.run(
        "secrets", "exec", "--method", "approle", "--mount", mount,
        "--secrets", f"{creds} password | DB_PASSWORD", "--", sys.executable, "-c", script,
        env={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    assert done.code == 128 + signal.SIGKILL, done
    assert time.monotonic() - started < 20
    assert "revoked 1 lease(s) and the login token" in done.out, done
    assert leases_under(cli.vault, creds) == [] and live_logins(cli.vault, mount) == []


def test_the_command_reads_stdin_and_may_close_its_stdout_early(cli: Cli) -> None:
    value = f"pw-{cli.uid}"
    cli.put("secret", f"{cli.uid}/app", {"S": value})
    script = (
        "import os, sys, time\n"
        "line = sys.stdin.readline().strip()\n"
        "print('read', line, os.environ['S'], flush=True)\n"
        "os.close(1)  # stdout closed while the command goes on\n"
        "time.sleep(0.3)\n"
        "print('later', os.environ['S'], file=sys.stderr, flush=True)\n"
        "sys.exit(5)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "steps", *exec_args(cli, script)],
        input="from stdin\n", capture_output=True, text=True, timeout=60, cwd=cli.cwd,
        env=cli.env(cli.reader()),
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "read from stdin ***\n" in done.stdout and "later ***\n" in done.stderr, done
    assert value not in done.stdout + done.stderr


@pytest.mark.parametrize("face", ["local", "jenkins"])
def test_values_printed_escaped_or_encoded_are_masked_too(cli: Cli, face: str) -> None:
    # A structured logger prints JSON (\u00e4, \", \\, \t); a debug line a repr; a URL its
    # quoted form; an auth header base64. Mask Passwords and a terminal mask none of these.
    values = {
        "UNI": f"pässwörd-{cli.uid}",
        "QUOTE": f'it\'s "q" {cli.uid}',
        "SLASH": f"C:\\temp\\{cli.uid} a/b",
        "TAB": f"two\tpart {cli.uid}",
    }
    cli.put("secret", f"{cli.uid}/app", values)
    script = (
        "import base64, json, os, urllib.parse\n"
        "for name in ('UNI', 'QUOTE', 'SLASH', 'TAB'):\n"
        "    s = os.environ[name]\n"
        "    print(json.dumps({'pw': s}), json.dumps(s, ensure_ascii=False), repr(s))\n"
        "    print(urllib.parse.quote(s), urllib.parse.quote_plus(s), urllib.parse.quote(s, ''))\n"
        "    print('Authorization:', base64.b64encode(s.encode()).decode())\n"
    )
    env = {**cli.reader()}
    if face == "jenkins":
        env.update({"JENKINS_URL": "http://jenkins.invalid/", "BUILD_ID": "1"})
    done = cli.run(*exec_args(cli, script), env=env)  # fails on any form of a value
    assert done.code == 0, done
    assert done.out.count('{"pw": "***"}') == 4, done
    assert done.out.count("Authorization: ***") == 4, done


@pytest.mark.parametrize("mode", ["exec", "fetch-github"])
def test_a_wildcard_request_sets_no_variable_that_runs_code(cli: Cli, mode: str) -> None:
    # `PATH *` names variables after the secret's keys: whoever may write the path chose
    # LD_PRELOAD / BASH_ENV, which would run their code in the command or, through
    # $GITHUB_ENV, in every later step of the job.
    cli.put("secret", f"{cli.uid}/app", {"password": f"pw-{cli.uid}", "BASH_ENV": "/tmp/x.sh"})
    env = cli.reader()
    marker = cli.cwd / "ran"
    if mode == "exec":
        args = ["secrets", "exec", "--secrets", f"secret/{cli.uid}/app *", "--",
                "touch", str(marker)]  # fmt: skip
    else:
        github_env = cli.cwd / "github.env"
        github_env.write_text("")
        env.update({"GITHUB_ACTIONS": "true", "GITHUB_ENV": str(github_env),
                    "RUNNER_TEMP": str(cli.cwd)})  # fmt: skip
        args = ["secrets", "fetch", "--secrets", f"secret/{cli.uid}/app *"]
    # Not cli.run: on GitHub its leak check would trip on the ::add-mask:: lines.
    proc = cli.start(*args, env=env)
    out, err = proc.communicate(timeout=60)
    done = Done(proc.returncode, out, err, 0)
    assert done.code == 1, done
    assert "the key 'BASH_ENV' would set BASH_ENV, which changes what programs run" in (
        done.out + done.err
    ), done
    assert "Traceback" not in done.err and not marker.exists()
    if mode != "exec":
        assert github_env.read_text() == ""
    # Asked for by name, or under a prefix, it is the user's choice and is given.
    done = cli.run(
        "secrets", "exec", "--secrets", f"secret/{cli.uid}/app * | APP_", "--",
        sys.executable, "-c", "import os; print(os.environ['APP_BASH_ENV'] == '/tmp/x.sh')",
        env=cli.reader(),
    )  # fmt: skip
    assert done.code == 0 and "\nTrue\n" in done.out, done


def test_with_json_on_github_the_commands_output_stays_inside_the_fence(cli: Cli) -> None:
    # The fence's markers go to stdout; the command's stdout went to stderr with --json, a
    # stream the runner reads apart, so its last line could be read after the fence's end.
    cli.put("secret", f"{cli.uid}/app", {"S": f"pw-{cli.uid}"})
    script = (
        "print('::error::from-stdout'); import sys; print('::error::from-stderr', file=sys.stderr)"
    )
    proc = cli.start(
        "--json", *exec_args(cli, script), env={**cli.reader(), "GITHUB_ACTIONS": "true"}
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines, start, end = fence(out)
    assert start < lines.index("::error::from-stdout") < end, out
    assert start < lines.index("::error::from-stderr") < end, out
    assert json.loads(lines[-1])["ok"] is True  # the result is still the last line
