"""The dependencies image's installer: the two-stage Dockerfile, which uv this machine can lend
the build stage, and how the build stage translates the base's pip settings for uv. No
services (tests/integration/test_package_uv.py builds with it)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from steps.services.images import install_requirements as inside
from steps.services.images.build import DepsBuild
from steps.services.images.installer import CONTEXT_NAME, choose, docker_arch, host_uv

DEPS = DepsBuild(
    base_image="python:3.11-slim",
    requirements=("numpy==2.4.6",),
    pip_index_url="https://internal.example/simple",
    pip_extra_index_urls=("https://extra.example/simple",),
    ca_bundle=b"pem",
    install_python=True,
)


def test_two_stages_and_the_final_one_has_no_installer() -> None:
    text = DEPS.dockerfile()
    build_stage, final_stage = text.split("\nFROM ")[1:]
    assert build_stage.startswith("python:3.11-slim AS venv\n")
    # uv is got (or not) before the requirements are copied: the engine keeps it per base.
    assert build_stage.index("install_requirements.py get-uv") < build_stage.index(
        "COPY requirements.txt"
    )
    assert final_stage.startswith("python:3.11-slim\n")
    assert "COPY --from=venv /opt/venv /opt/venv\n" in final_stage
    for word in ("uv", "installer", "install_requirements", "install-settings", "ca-bundle"):
        assert word not in final_stage.replace("uvicorn", ""), word
    # The base's Python line is the same in both stages (the second is the first's cache).
    apt = [line for line in text.splitlines() if "apt-get install" in line]
    assert len(apt) == 2 and apt[0] == apt[1]


def test_the_settings_are_data_and_this_machines_uv_is_not_in_the_key() -> None:
    files = DEPS.files()
    assert CONTEXT_NAME not in files and "installer/README" in files
    assert json.loads(files["install-settings.json"]) == {
        "index_url": "https://internal.example/simple",
        "extra_index_urls": ["https://extra.example/simple"],
        "cert": "/opt/mlsteps/ca-bundle.pem",
    }
    assert "internal.example" not in DEPS.dockerfile()
    # The key is the digest of these files, which never hold uv (the run adds it to a copy):
    # the same model and requirements give the same key wherever uv comes from.
    key = DEPS.cache_key()
    files[CONTEXT_NAME] = b"\x7fELF"
    assert DEPS.cache_key() == key and CONTEXT_NAME not in DEPS.files()


def test_this_machines_uv_is_copied_only_for_a_linux_target_of_its_machine(
    tmp_path: Path,
) -> None:
    uv = host_uv()
    assert uv is not None and uv.is_file()  # mlsteps depends on the uv package
    machine = docker_arch(None)
    assert choose(f"linux/{machine}").binary == uv
    assert choose(machine).binary == uv  # the engine's Arch
    other = "arm64" if machine == "amd64" else "amd64"
    assert choose(f"linux/{other}").binary is None
    assert "not for the target, linux/" + other in choose(f"linux/{other}").why_not
    assert choose("windows/amd64").binary is None
    # A macOS host's uv: a Mach-O binary.
    macho = tmp_path / "uv"
    macho.write_bytes(bytes.fromhex("cffaedfe07000001") + b"\0" * 64)
    mac = choose(f"linux/{machine}", macho)
    assert mac.binary is None and "not a Linux binary" in mac.why_not
    assert "installed in the build stage with the base's pip" in mac.describe()


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
    for flag in ("--no-cache", "--native-tls", "--no-python-downloads"):
        assert flag in argv
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
