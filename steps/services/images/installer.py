"""Which installer fills the dependencies image's venv, as far as this machine can tell: its own
uv (mlsteps depends on the uv package) copied into the build stage when it is a Linux binary
for the target's machine, else uv installed in the build stage with the base's pip. The build
stage (install_requirements.py) has the last word: pip, with one line saying why, where the
base configures pip in a way uv does not read or uv cannot run there.

Light: the plan (``--dry-run``) uses it; it reads an ELF header and imports no heavy library.
"""

from __future__ import annotations

import platform as host_platform
import sys
from dataclasses import dataclass
from pathlib import Path

from steps.services.images.build import INSTALLER_DIR
from steps.services.images.system_libraries import read_elf

# Docker's architecture names (a --platform's second part, the engine's "Arch") and the ELF
# e_machine of binaries that run there.
ELF_MACHINES = {
    "amd64": 62, "arm64": 183, "386": 3, "arm": 40, "ppc64le": 21, "s390x": 22, "riscv64": 243,
}  # fmt: skip
# What platform.machine() says on a Linux or macOS host, in Docker's names.
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386",
             "i386": "386", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
             "riscv64": "riscv64"}  # fmt: skip
CONTEXT_NAME = f"{INSTALLER_DIR}/uv"


@dataclass(frozen=True)
class Installer:
    binary: Path | None  # this machine's uv, to copy into the build stage
    why_not: str = ""  # why this machine's uv is not copied

    def describe(self) -> str:
        if self.binary:
            how = f"uv from this machine ({self.binary}), copied into the build stage only"
        else:
            how = f"uv installed in the build stage with the base's pip ({self.why_not})"
        return (
            how + "; pip instead, with a line saying why, where the base configures pip in a "
            "way uv does not read (a pip.conf, PIP_* settings other than the index and CA) or "
            "uv cannot run or install there"
        )


def host_uv() -> Path | None:
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        beside = Path(sys.executable).with_name("uv")
        return beside if beside.is_file() else None


def docker_arch(target: str | None) -> str:
    """A --platform (linux/arm64/v8) or an engine's Arch (amd64, x86_64) in Docker's names;
    '' for a platform that is not Linux."""
    if target and "/" in target:
        os_name, arch = target.split("/")[:2]
        return arch if os_name == "linux" else ""
    arch = target or host_platform.machine()
    return HOST_ARCH.get(arch, arch)


def choose(target: str | None, binary: Path | None = None) -> Installer:
    """target: the --platform given, else the engine's architecture (the plan, which asks no
    engine, takes this machine's)."""
    binary = binary or host_uv()
    if binary is None:
        return Installer(None, "this machine has no uv")
    arch = docker_arch(target)
    elf = read_elf(str(binary.resolve()))
    if elf is None:
        return Installer(None, f"this machine's uv is not a Linux binary ({binary})")
    if not arch or ELF_MACHINES.get(arch) != elf.machine:
        return Installer(None, f"this machine's uv is not for the target, {target or arch}")
    return Installer(binary)
