"""The three faces' file formats and masking (steps/ci/). The GitHub runner itself is
exercised under act in tests/faces/; here the formats are checked as the runner parses them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from steps.ci import detect, make_face
from steps.ci.base import Face
from steps.ci.github import GitHubFace
from steps.ci.jenkins import JenkinsFace
from steps.ci.local import LocalFace


def parse_github_file(text: str) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the runner does (NAME<<DELIM … DELIM blocks)."""
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        name, delimiter = line.split("<<", 1)
        body = []
        for inner in lines:
            if inner == delimiter:
                break
            body.append(inner)
        values[name] = "\n".join(body)
    return values


def github(tmp_path: Path) -> tuple[GitHubFace, io.StringIO, dict[str, str]]:
    env = {
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_ENV": str(tmp_path / "env"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    out = io.StringIO()
    return GitHubFace(env, out=out), out, env


def test_github_outputs_survive_multiline_values_and_fake_delimiters(tmp_path: Path) -> None:
    face, _, env = github(tmp_path)
    tricky = "line one\nEOF\nghadelimiter_x\nmetrics<<EOF\nlast"
    face.set_outputs("train", {"run-id": "abc", "metrics": tricky})
    parsed = parse_github_file(Path(env["GITHUB_OUTPUT"]).read_text())
    assert parsed == {"run-id": "abc", "metrics": tricky}
    delimiters = re.findall(
        r"^(?:run-id|metrics)<<(ghadelimiter_\w+)$", Path(env["GITHUB_OUTPUT"]).read_text(), re.M
    )
    assert len(set(delimiters)) == 2  # random per value


def test_github_env_exports_are_multiline_safe_and_keep_the_value(tmp_path: Path) -> None:
    face, out, env = github(tmp_path)
    value = "-----BEGIN KEY-----\nline%2\n-----END KEY-----"
    face.mask(value)  # masked in logs, yet the next step must receive the real value
    face.set_env("SIGNING_KEY", value)
    assert parse_github_file(Path(env["GITHUB_ENV"]).read_text()) == {"SIGNING_KEY": value}
    assert value.splitlines()[1] not in out.getvalue().replace("::add-mask::line%252", "")


def test_github_masks_every_line_before_printing_and_scrubs_output(tmp_path: Path) -> None:
    face, out, env = github(tmp_path)
    face.mask("first-secret-line\nsecond%line")
    face.info("value is first-secret-line")
    face.set_outputs("train", {"leak": "x second%line y"})
    printed = out.getvalue().splitlines()
    assert printed[:2] == ["::add-mask::first-secret-line", "::add-mask::second%25line"]
    assert "first-secret-line" not in "\n".join(printed[2:])
    assert "second%line" not in Path(env["GITHUB_OUTPUT"]).read_text()


def test_github_training_output_cannot_issue_workflow_commands(tmp_path: Path) -> None:
    face, out, _ = github(tmp_path)
    with face.untrusted_lines():
        face.log_line("::add-mask::nothing")
    lines = out.getvalue().splitlines()
    token = lines[0].removeprefix("::stop-commands::")
    assert lines[0].startswith("::stop-commands::") and len(token) == 32
    assert lines[1] == "::add-mask::nothing" and lines[2] == f"::{token}::"


def test_github_groups_annotations_and_summary(tmp_path: Path) -> None:
    face, out, env = github(tmp_path)
    with face.group("training log"):
        face.warning("careful\nnow")
    face.error("100% broken")
    face.summary("train", "### title\n")
    assert out.getvalue().splitlines() == [
        "::group::training log",
        "::warning::careful%0Anow",
        "::endgroup::",
        "::error::100%25 broken",
    ]
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text() == "### title\n\n"


def test_jenkins_outputs_file_and_summary(tmp_path: Path) -> None:
    env = {
        "MLSTEPS_OUTPUTS_FILE": str(tmp_path / "o" / "train.json"),
        "MLSTEPS_SUMMARY_FILE": str(tmp_path / "s.md"),
    }
    face = JenkinsFace(env, out=io.StringIO())
    face.mask("s3cr3t")
    face.set_outputs("train", {"run-id": "r1", "metrics": '{"acc": 0.9}', "x": "has s3cr3t"})
    face.summary("train", "| a |")
    assert json.loads(Path(env["MLSTEPS_OUTPUTS_FILE"]).read_text()) == {
        "run-id": "r1",
        "metrics": '{"acc": 0.9}',
        "x": "has ***",
    }
    assert Path(env["MLSTEPS_SUMMARY_FILE"]).read_text() == "| a |\n"
    assert not list((tmp_path / "o").glob(".*"))  # no temp file left beside it


def test_jenkins_default_paths_are_under_the_workspace(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    JenkinsFace({}, out=io.StringIO()).set_outputs("train", {"run-id": "r"})
    assert json.loads((tmp_path / ".mlsteps/outputs/train.json").read_text()) == {"run-id": "r"}


def test_local_face_plain_lines_without_a_terminal() -> None:
    out = io.StringIO()
    face = LocalFace({}, out=out)
    face.progress("pull", "pulling 1/10 MiB")
    face.progress("pull", "pulling 2/10 MiB")  # within the interval: not printed
    face.progress("pull", "pulled", final=True)
    face.info("done")
    assert out.getvalue().splitlines() == ["pulling 1/10 MiB", "pulled", "done"]


def test_quiet_keeps_errors_outputs_json_and_training_logs() -> None:
    out = io.StringIO()
    face = LocalFace({}, out=out, quiet=True)
    face.info("chatter")
    face.log_line("epoch 1")
    face.set_outputs("train", {"run-id": "r1"})
    face.error("bad")
    assert out.getvalue().splitlines() == ["epoch 1", "  run-id: r1", "error: bad"]


def test_detection_and_override() -> None:
    assert detect({"GITHUB_ACTIONS": "true"}) == "github"
    assert detect({"JENKINS_URL": "http://ci/"}) == "jenkins"
    assert detect({"BUILD_ID": "7", "JOB_NAME": "train"}) == "jenkins"
    assert detect({"BUILD_ID": "7"}) == "local"  # BUILD_ID alone is too common to mean Jenkins
    assert detect({}) == "local"
    assert make_face("jenkins", {"GITHUB_ACTIONS": "true"}).name == "jenkins"
    assert make_face("auto", {"GITHUB_ACTIONS": "true"}).name == "github"


def test_github_registers_the_trimmed_and_uncoloured_forms_too(tmp_path: Path) -> None:
    face, out, _ = github(tmp_path)
    face.mask(" \x1b[31mred-secret\x1b[0m ")
    assert out.getvalue().splitlines() == [
        "::add-mask:: \x1b[31mred-secret\x1b[0m ",
        "::add-mask::\x1b[31mred-secret\x1b[0m",
        "::add-mask:: red-secret ",
        "::add-mask::red-secret",
    ]
    face.mask("secret")  # held by the first: the longer one is still replaced whole
    assert face.scrub("[red-secret] [secret]") == "[***] [***]"


def test_overlapping_values_are_hidden_as_one_and_stars_are_not_masked_twice() -> None:
    face = Face({})
    face.mask("abcdefgh")
    face.mask("efghijkl")  # overlaps the first: one after the other showed ***ijkl
    assert face.scrub("xx abcdefghijkl yy") == "xx *** yy"
    face.mask("*")  # a value of one star: the *** put in place is not masked again
    assert face.scrub("a * b abcdefgh") == "a *** b ***"
    face.mask("aa")
    assert face.scrub("aaa|aa a") == "***|*** a"  # overlapping matches of one value


def test_a_stream_is_cut_only_where_no_masked_value_crosses() -> None:
    face = Face({})
    assert face.cut_for_scrub("anything") == len("anything")  # nothing masked: no hold
    face.mask("SECRET")
    # The last characters wait (as many as the longest masked form, its base64 here, less
    # one): what follows may complete a value starting there.
    assert face.cut_for_scrub("x" * 20 + "SEC") == 23 - (len("U0VDUkVU") - 1)
    assert face.cut_for_scrub("x" * 20 + "SECRETyy") == 20  # never inside a value
    face.mask("ETyyzz")  # overlaps SECRET: the cut moves back past both
    assert face.cut_for_scrub("x" * 20 + "SECRETyyzzqq") == 20
    assert face.cut_for_scrub("x" * 20 + "SECRETyyzz" + "q" * 9) == 39 - 7  # nothing crosses
