"""The dependencies image's installer: the one RUN step that fetches uv, installs with it and
removes it, and how it translates the base's pip settings for uv. No services
(tests/integration/test_package_uv.py builds with it)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from steps.services.images import install_requirements as inside
from steps.services.images.build import DepsBuild

DEPS = DepsBuild(
    base_image="python:3.11-slim",
    requirements=("numpy==2.4.6",),
    pip_index_url="https://internal.example/simple",
    pip_extra_index_urls=("https://extra.example/simple",),
    ca_bundle=b"pem",
    install_python=True,
)


def test_one_run_step_fetches_uv_installs_and_removes_it() -> None:
    text = DEPS.dockerfile()
    assert text.count("\nFROM ") == 1  # one stage: no venv written twice
    run = next(part for part in text.split("\nRUN ") if part.startswith("python3 -I"))
    # The installer runs first in the step that makes the venv and leaves nothing of uv in it;
    # the rest of the step (system libraries, bytecode, the user) comes after, in one layer.
    assert run.startswith("python3 -I /opt/mlsteps/install_requirements.py \\\n")
    assert run.index("system_libraries.py") > run.index("install_requirements.py")
    assert inside.UV_DIR.startswith("/tmp/") and inside.UV.startswith(inside.UV_DIR + "/")
    # Nothing but this script names the installer: no COPY of a uv binary.
    for line in text.splitlines():
        if line.startswith("COPY"):
            assert " uv" not in line and "/uv" not in line, line


def test_the_settings_are_data_not_words_of_the_dockerfile() -> None:
    files = DEPS.files()
    assert json.loads(files["install-settings.json"]) == {
        "index_url": "https://internal.example/simple",
        "extra_index_urls": ["https://extra.example/simple"],
        "cert": "/opt/mlsteps/ca-bundle.pem",
    }
    assert "internal.example" not in DEPS.dockerfile()
    assert files["install_requirements.py"] == Path(inside.__file__).read_bytes()
    # The settings are in the cache key (they are inputs of the image).
    other = DepsBuild(**{**DEPS.__dict__, "pip_index_url": "https://other.example/simple"})
    assert other.cache_key() != DEPS.cache_key()


def test_the_main_step_removes_uv_whatever_happens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv's directory goes when the install worked, when uv failed and when an exception flew;
    the last two end with pip (stubbed here: tests/integration/test_package_uv.py runs it)."""
    uv_dir = tmp_path / "mlsteps-uv"
    monkeypatch.setattr(inside, "UV_DIR", str(uv_dir))
    monkeypatch.setattr(inside, "load_settings", lambda: {})
    pip_calls: list[int] = []
    monkeypatch.setattr(inside, "install_with_pip", lambda settings: pip_calls.append(1) or 0)

    def leaves_uv(result: str | Exception):
        def install(settings: dict, environ: dict) -> str:
            (uv_dir / "bin").mkdir(parents=True)
            (uv_dir / "bin" / "uv").write_text("binary")
            if isinstance(result, Exception):
                raise result
            return result

        return install

    for result, pip in (("", 0), ("uv could not install the requirements (x)", 1),
                        (OSError("disk full"), 1)):  # fmt: skip
        pip_calls.clear()
        monkeypatch.setattr(inside, "install_with_uv", leaves_uv(result))
        assert inside.main() == 0
        assert not uv_dir.exists()
        assert len(pip_calls) == pip


def test_the_bases_pip_settings_that_uv_is_told() -> None:
    argv, env = inside.uv_command(
        {"index_url": None, "extra_index_urls": ["https://given.example/simple"], "cert": None},
        {
            "PIP_INDEX_URL": "https://corp.example/simple",
            "PIP_EXTRA_INDEX_URL": "https://a.example/simple https://given.example/simple",
            "PIP_CERT": "/etc/corp-ca.pem",
        },
    )
    assert argv[argv.index("--index-url") + 1] == "https://corp.example/simple"
    extras = [argv[i + 1] for i, word in enumerate(argv) if word == "--extra-index-url"]
    assert extras == ["https://given.example/simple", "https://a.example/simple"]
    assert env["SSL_CERT_FILE"] == "/etc/corp-ca.pem"
    assert argv[argv.index("--index-strategy") + 1] == "unsafe-best-match"
    for flag in ("--no-config", "--no-cache", "--no-python-downloads"):
        assert flag in argv
    assert env["UV_SYSTEM_CERTS"] == env["UV_NATIVE_TLS"] == "1"
    assert argv[argv.index("--link-mode") + 1] == "copy"
    assert "--compile-bytecode" not in argv  # as pip's --no-compile
    assert argv[-2:] == ["-r", "/opt/mlsteps/requirements.txt"]
    # The options given to mlsteps beat the base's, as pip's command line beats its environment.
    argv, env = inside.uv_command(
        {"index_url": "https://given.example/simple", "extra_index_urls": [],
         "cert": "/opt/mlsteps/ca-bundle.pem"},
        {"PIP_INDEX_URL": "https://corp.example/simple", "PIP_CERT": "/etc/corp-ca.pem"},
    )  # fmt: skip
    assert argv[argv.index("--index-url") + 1] == "https://given.example/simple"
    assert env["SSL_CERT_FILE"] == "/opt/mlsteps/ca-bundle.pem"


@pytest.mark.parametrize(
    ("environ", "files", "why"),
    [
        ({"PIP_INDEX_URL": "x", "PIP_NO_CACHE_DIR": "1", "PIP_DEFAULT_TIMEOUT": "60"}, [], ""),
        ({}, ["/etc/pip.conf"], "the base configures pip in /etc/pip.conf, which uv does not"),
        ({"PIP_TRUSTED_HOST": "h", "PIP_FIND_LINKS": "/w"}, [], "the base sets PIP_FIND_LINKS, "
         "PIP_TRUSTED_HOST, which uv does not read"),
        ({"PIP_CONFIG_FILE": "/corp/pip.ini"}, [], "the base sets PIP_CONFIG_FILE"),
    ],
)  # fmt: skip
def test_what_uv_cannot_be_told_sends_the_install_to_pip(
    environ: dict[str, str], files: list[str], why: str
) -> None:
    got = inside.untranslated(environ, files)
    assert got.startswith(why) if why else got == ""


def test_pip_config_files_are_found_where_pip_reads_them(tmp_path: Path) -> None:
    (tmp_path / ".config" / "pip").mkdir(parents=True)
    (tmp_path / ".config" / "pip" / "pip.conf").write_text("[global]\nindex-url = x\n")
    (tmp_path / "xdg" / "pip").mkdir(parents=True)
    (tmp_path / "xdg" / "pip" / "pip.conf").write_text("[global]\n")
    found = inside.pip_config_files({"HOME": str(tmp_path), "XDG_CONFIG_DIRS": f"{tmp_path}/xdg"})
    assert f"{tmp_path}/.config/pip/pip.conf" in found and f"{tmp_path}/xdg/pip/pip.conf" in found
    assert f"{tmp_path}/.pip/pip.conf" not in found


def test_a_uv_that_does_not_run_is_a_reason_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary the base cannot run (musl, an old glibc): uv_version says why, in one line."""
    fake = tmp_path / "uv"
    fake.write_text("#!/bin/sh\necho 'uv: /lib/libc.so.6: version GLIBC_2.17 not found' >&2\n"
                    "exit 1\n")  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setattr(inside, "UV", str(fake))
    assert inside.uv_version() == (
        "",
        "uv does not run on the base (uv: /lib/libc.so.6: version GLIBC_2.17 not found)",
    )
    monkeypatch.setattr(inside, "UV", str(tmp_path / "missing"))
    version, why = inside.uv_version()
    assert version == "" and why.startswith("uv does not run on the base (")
    real = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert real
    monkeypatch.setattr(inside, "UV", real)
    assert inside.uv_version()[0].count(".") >= 1


def test_the_reason_line_names_the_cause_and_no_password() -> None:
    output = (
        "Resolved 3 packages\nerror: Request failed after 3 retries in 6.0s\n"
        "  cause: Failed to fetch: http://u:hunter2@127.0.0.1:9/simple/numpy/\n"
        "  cause: Connection refused (os error 111)\n"
    )
    assert inside.last_line(output) == (
        "error: Request failed after 3 retries in 6.0s; cause: Failed to fetch: "
        "http://***@127.0.0.1:9/simple/numpy/"
    )
    assert inside.last_line("a\nlast words\n") == "last words"


def test_the_bases_uv_settings_are_not_handed_to_uv() -> None:
    """A base's UV_INDEX_URL, UV_OVERRIDE or UV_COMPILE_BYTECODE would make uv install what pip
    would not (another index, other versions, other files): uv gets none of them, and reads no
    uv.toml (--no-config)."""
    argv, env = inside.uv_command(
        {"index_url": None, "extra_index_urls": [], "cert": None},
        {"UV_INDEX_URL": "http://evil.example/simple", "UV_OVERRIDE": "/tmp/o.txt",
         "UV_COMPILE_BYTECODE": "1", "PATH": "/usr/bin"},
    )  # fmt: skip
    assert not {"UV_INDEX_URL", "UV_OVERRIDE", "UV_COMPILE_BYTECODE"} & set(env)
    assert env["PATH"] == "/usr/bin" and "--no-config" in argv
    assert "evil.example" not in " ".join(argv)


def test_the_uv_the_build_fetches_is_the_one_ci_pins() -> None:
    constraints = (Path(__file__).parents[3] / ".ci" / "constraints.txt").read_text()
    assert inside.UV_REQUIREMENT in constraints.splitlines()
