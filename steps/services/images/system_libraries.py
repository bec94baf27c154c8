"""The system libraries a model's installed packages need: found and installed inside the
dependencies image's build, in the same layer as the packages.

A wheel's extension modules name the shared libraries they link against (the ELF ``NEEDED``
entries). Most wheels ship them (``numpy.libs/``, ``$ORIGIN`` run paths); some expect the system
to have them: LightGBM's ``lib_lightgbm.so`` needs ``libgomp.so.1``, the OpenMP runtime, which
a slim base lacks, and its server would die at the first import. This script, run by the build
after ``pip install``, reads every ``.so`` in the venv, keeps the libraries that neither the
image's loader paths, the library's own run path nor any installed package provides, finds the
Debian/Ubuntu package of each (``libgomp.so.1`` → ``libgomp1``, by Debian's naming rule for
library packages or a short table of exceptions, and only if apt knows the package), and
installs them with the packages asked for with ``--system-package``. A library still missing
then fails the build here, naming it, the Python package that needs it and the options to use,
never first at the smoke test -- unless that package imports without it: a plugin loaded on
demand (PyTorch's NVIDIA wheels ship MPI, UCX and RDMA transports nothing loads on a CPU) is
left out with a line saying so.

It runs inside the build, so it uses Python's standard library only. Its arguments are data:
package names reach apt-get as argv words, never a shell line. Printed lines that start with
``mlsteps:`` are progress; ``mlsteps error:`` lines are the failure the package step reports.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

# A Debian package name (policy 5.6.1), optionally pinned to a version (policy 5.6.12).
DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")
# Libraries the GPU driver brings at run time (the NVIDIA container toolkit mounts them):
# never installed into an image.
DRIVER_LIBRARY = re.compile(r"lib(cuda|nvidia-[a-z0-9-]+|nvcuvid)\.so(\.\d+)*")
# Where Debian's naming rule does not give the package: libz.so.1 is zlib1g, libcrypto is in
# libssl3, GLib's libraries are one package. Each is tried before the rule, in this order.
EXCEPTIONS = {
    "libz.so.1": ("zlib1g",),
    "libcrypto.so.3": ("libssl3", "libssl3t64"),
    **{
        f"lib{name}-2.0.so.0": ("libglib2.0-0", "libglib2.0-0t64")
        for name in ("glib", "gobject", "gio", "gmodule", "gthread")
    },
    "libjpeg.so.62": ("libjpeg62-turbo",),
    "libjpeg.so.8": ("libjpeg-turbo8", "libjpeg8"),
    "libsnappy.so.1": ("libsnappy1v5",),
}
# The start of the one line that says why the build failed; the package step reads it back.
ERROR_PREFIX = "mlsteps error: "
DEFAULT_LOADER_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")
_NEEDED, _RPATH, _RUNPATH, _SHT_DYNAMIC = 1, 15, 29, 6


@dataclass
class ElfFile:
    machine: int
    needed: list[str] = field(default_factory=list)
    run_paths: list[str] = field(default_factory=list)


def read_elf(path: str) -> ElfFile | None:
    """The machine, NEEDED entries and run paths of an ELF shared object; None when the file
    is not one (or is cut short): a file that is not ELF needs nothing."""
    try:
        with open(path, "rb") as f:
            return _read_elf(f)
    except (OSError, struct.error, IndexError, ValueError, MemoryError):
        return None


def _read_elf(f: BinaryIO) -> ElfFile | None:
    read, seek = f.read, f.seek
    head = read(64)
    if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack(order + "H", head[18:20])
    if wide:
        (shoff,) = struct.unpack(order + "Q", head[40:48])
        shentsize, shnum = struct.unpack(order + "HH", head[58:62])
        section, entry = order + "IIQQQQIIQQ", order + "qQ"
    else:
        (shoff,) = struct.unpack(order + "I", head[32:36])
        shentsize, shnum = struct.unpack(order + "HH", head[46:50])
        section, entry = order + "IIIIIIIIII", order + "iI"
    if not shoff or shentsize != struct.calcsize(section):
        return ElfFile(machine)
    seek(shoff)
    table = read(shentsize * shnum)
    sections = [struct.unpack_from(section, table, i * shentsize) for i in range(shnum)]
    elf = ElfFile(machine)
    for _, kind, _, _, offset, size, link, *_ in sections:
        if kind != _SHT_DYNAMIC:
            continue
        _, _, _, _, str_offset, str_size, *_ = sections[link]
        seek(str_offset)
        strings = read(min(str_size, 64 << 20))
        seek(offset)
        body, step = read(min(size, 1 << 20)), struct.calcsize(entry)
        for i in range(0, len(body) - step + 1, step):
            tag, value = struct.unpack_from(entry, body, i)
            if tag == 0:
                break
            if tag in (_NEEDED, _RPATH, _RUNPATH):
                # A name ends within 4 KiB: a forged table cannot make each read the rest.
                end = strings.find(b"\0", value, value + 4096)
                if end < 0:
                    return None
                text = strings[value:end].decode(errors="replace")
                if tag == _NEEDED:
                    elf.needed.append(text)
                else:
                    elf.run_paths += [p for p in text.split(":") if p]
    return elf


def loader_dirs(environ: dict[str, str] | None = None) -> list[str]:
    """The directories the dynamic loader searches: LD_LIBRARY_PATH, /etc/ld.so.conf and its
    includes (the multiarch and CUDA directories), then the defaults."""
    environ = dict(os.environ) if environ is None else environ
    dirs = [d for d in environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    seen: set[str] = set()

    def read_conf(path: str) -> None:
        if path in seen or len(seen) > 200:
            return
        seen.add(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(path), pattern)
                for included in sorted(glob.glob(pattern)):
                    read_conf(included)
            elif line.startswith("/"):
                dirs.append(line)

    read_conf("/etc/ld.so.conf")
    return [*dirs, *DEFAULT_LOADER_DIRS]


def names_in(dirs: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for directory in dirs:
        try:
            found.update(n for n in os.listdir(directory) if ".so" in n)
        except OSError:
            continue
    return found


def shared_objects(root: str) -> Iterator[str]:
    """The regular files named like shared objects under root: no link is followed (a link
    may lead out of the venv, or to /dev/zero) and no FIFO opened (it would block). A stack,
    not os.walk, whose recursion a deep tree would exhaust."""
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif (entry.name.endswith(".so") or ".so." in entry.name) and entry.is_file(
                follow_symlinks=False
            ):
                yield entry.path


def owners(root: str) -> dict[str, str]:
    """Each installed file (by real path) → the distribution that installed it (its RECORD)."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for site in glob.glob(os.path.join(root, "lib", "python*", "site-packages")):
        for dist in distributions(path=[site]):
            name = dist.metadata["Name"] or "?"
            for file in dist.files or ():
                found[os.path.realpath(os.path.join(site, str(file)))] = name
    return found


@dataclass
class Missing:
    library: str
    needed_by: list[tuple[str, str]]  # (distribution, path relative to the venv)

    def packages(self) -> str:
        return ", ".join(sorted({dist for dist, _ in self.needed_by}))

    def example(self) -> str:
        return self.needed_by[0][1]


def missing_libraries(root: str, system: set[str]) -> tuple[list[Missing], list[str]]:
    """(the libraries the venv's shared objects need and nothing here provides, the driver
    libraries among them, which the GPU runtime brings)."""
    machine = _machine()
    shipped = {os.path.basename(p) for p in shared_objects(root)}
    wanted: dict[str, list[str]] = {}
    for path in shared_objects(root):
        elf = read_elf(path)
        if elf is None or (machine and elf.machine != machine):
            continue
        origin = os.path.dirname(path)
        own = names_in(p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
                       for p in elf.run_paths)  # fmt: skip
        for library in elf.needed:
            if "/" in library:
                if not os.path.exists(library):
                    wanted.setdefault(library, []).append(path)
            elif library not in system and library not in own and library not in shipped:
                wanted.setdefault(library, []).append(path)
    driver = sorted(n for n in wanted if DRIVER_LIBRARY.fullmatch(n))
    if not wanted:
        return [], driver
    owner = owners(root)
    missing = [
        Missing(
            library,
            [
                (owner.get(os.path.realpath(p), "an installed package"), os.path.relpath(p, root))
                for p in sorted(paths)
            ],
        )  # fmt: skip
        for library, paths in sorted(wanted.items())
        if library not in driver
    ]
    return missing, driver


def _machine() -> int:
    elf = read_elf(os.path.realpath(sys.executable))
    return elf.machine if elf else 0


def candidates(library: str) -> list[str]:
    """The Debian/Ubuntu packages that may hold a library, the likeliest first: the table of
    exceptions, else Debian's rule (libfoo.so.1 → libfoo1; libfoo2.so.3 → libfoo2-3), also
    with the t64 suffix of the 64-bit time transition (Debian 13, Ubuntu 24.04)."""
    if library in EXCEPTIONS:
        return list(EXCEPTIONS[library])
    match = re.fullmatch(r"(lib[^/]+?)\.so\.([0-9][0-9.]*)", library)
    if not match:
        return []
    name, version = match.group(1).lower().replace("_", "-"), match.group(2)
    base = f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"
    return [base, base + "t64"] if DEBIAN_PACKAGE.fullmatch(base) else []


# ----- running inside the build ---------------------------------------------------------------


class Failed(Exception):
    pass


def one_line(text: str) -> str:
    """Library and package names come from the wheels' files: a newline in one would start a
    line of its own, such as a forged `mlsteps error:`."""
    return " ".join(text.split())


def say(line: str) -> None:
    print(f"mlsteps: {one_line(line)}", flush=True)


def _run(argv: list[str], what: str) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-8:]
        raise Failed(f"{what} failed (exit {done.returncode}): " + " / ".join(tail))
    return done.stdout + done.stderr


def apt_candidates(names: list[str]) -> set[str]:
    """The names apt can install here: a real package with a candidate version (a virtual
    package or an unknown name has none)."""
    if not names:
        return set()
    text = _run(["apt-cache", "policy", *names], "apt-cache policy")
    found, current = set(), ""
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
        elif line.strip().startswith("Candidate:") and "(none)" not in line:
            found.add(current)
    return found


def update_package_lists(wanted: list[str]) -> None:
    """apt-get update, failing when a source could not be read: apt reports that as a
    warning and exits 0, and every package would then look unknown."""
    why = (
        f"The build installs system packages for {', '.join(wanted)} from the base image's "
        "apt sources. Let the build reach them (a proxy: HTTP_PROXY), or give --base-image "
        "with an image that has them."
    )
    try:
        said = _run(["apt-get", "update", "-qq"], "apt-get update")
    except Failed as exc:
        raise Failed(f"{exc}. {why}") from None
    failed = [line for line in said.splitlines() if line.startswith(("W:", "E:", "Err:"))
              and ("fetch" in line or "download" in line)]  # fmt: skip
    if failed:
        raise Failed(f"apt-get update could not read the package lists: {failed[0]}. {why}")


# Imports each module named in argv[1] (JSON) and prints, last, the ones that failed.
IMPORT_CHECK = """
import importlib, json, sys
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = type(exc).__name__ + ": " + str(exc)[:300]
print()
print(json.dumps(failed))
"""
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def top_level_modules(root: str, distribution: str) -> list[str]:
    """The modules a distribution installs at the top of site-packages (its RECORD)."""
    from importlib.metadata import distributions

    names: set[str] = set()
    for site in glob.glob(os.path.join(root, "lib", "python*", "site-packages")):
        for dist in distributions(path=[site]):
            if dist.metadata["Name"] != distribution:
                continue
            for file in dist.files or ():
                top = str(file).split("/", 1)[0].split(".", 1)[0]
                if MODULE.fullmatch(top) and top not in ("__pycache__", "bin"):
                    names.add(top)
    return sorted(names)


def needed_now(root: str, missing: list[Missing]) -> list[Missing]:
    """The missing libraries serving cannot do without: those of a package that does not
    import without them. A library only a plugin links against (PyTorch's NVIDIA wheels ship
    MPI, UCX and RDMA transports, which nothing loads on a CPU) is not one of them."""
    modules = {m.library: [t for d, _ in m.needed_by for t in top_level_modules(root, d)]
               for m in missing}  # fmt: skip
    wanted = sorted({t for ts in modules.values() for t in ts})
    failed: dict[str, str] = {}
    if wanted:
        python = os.path.join(root, "bin", "python")
        try:
            argv = [python, "-c", IMPORT_CHECK, json.dumps(wanted)]
            done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            failed = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, IndexError, ValueError):
            failed = dict.fromkeys(wanted, "the import check did not finish")
    # An .so no package recorded, or a package whose modules do not import: needed.
    return [m for m in missing if not modules[m.library] or
            any(t in failed for t in modules[m.library])]  # fmt: skip


def not_needed_now(missing: list[Missing]) -> list[str]:
    return [
        f"not installed: {m.library}, needed by {m.example()} of {m.packages()}, which "
        "imports without it (a plugin loaded on demand); if the model loads it, give "
        "--system-package with the Debian package that holds it"
        for m in missing
    ]


def install(root: str, requested: list[str]) -> list[str]:
    """Install what the venv's libraries need and the requested packages; the lines to say."""
    bad = [p for p in requested if not DEBIAN_PACKAGE.fullmatch(p)]
    if bad:
        raise Failed(f"--system-package {bad[0]!r} is not a Debian package name.")
    missing, driver = missing_libraries(root, names_in(loader_dirs()))
    if driver:
        say(f"not installed, the GPU driver provides them at run time: {', '.join(driver)}")
    if not missing and not requested:
        say("every shared library the installed packages need is in the image")
        return []
    if not shutil.which("apt-get"):
        needs = "; ".join(f"{m.library} (for {m.packages()})" for m in needed_now(root, missing))
        if needs or requested:
            raise Failed(
                "the base image has no apt-get, so "
                + (f"the libraries {needs} cannot be installed" if needs else "")
                + (" and " if needs and requested else "")
                + (f"--system-package {' '.join(requested)} cannot be installed"
                   if requested else "")
                + ". Give --base-image with an image that has them."
            )  # fmt: skip
        return not_needed_now(missing)
    try:
        update_package_lists([f"{m.library} (for {m.packages()})" for m in missing] + requested)
    except Failed:
        # Offline (a mirror for pip only): fine as long as nothing serving needs is missing.
        if requested or needed_now(root, missing):
            raise
        return not_needed_now(missing)
    names = [p.split("=", 1)[0] for p in requested]
    options = {m.library: candidates(m.library) for m in missing}
    known = apt_candidates(sorted({*names, *(c for cs in options.values() for c in cs)}))
    if unknown := [n for n in names if n not in known]:
        raise Failed(
            f"--system-package {unknown[0]}: no such package in the base image's package "
            "lists. Check the name (apt-cache search on a machine of the same distribution)."
        )
    # A library with no package by its name may still come with a --system-package one (the
    # fix the failure below names): what is missing after the install decides.
    chosen = {
        m.library: package
        for m in missing
        if (package := next((c for c in options[m.library] if c in known), None))
    }
    packages = sorted({*requested, *chosen.values()})
    if packages:
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
             "apt-get install " + " ".join(packages))  # fmt: skip
    # What a Dockerfile's `apt-get clean && rm -rf /var/lib/apt/lists/*` leaves: no
    # downloaded .deb, no package lists (tens of MB in the layer, and stale tomorrow).
    _run(["apt-get", "clean"], "apt-get clean")
    for entry in glob.glob("/var/lib/apt/lists/*"):
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.remove(entry)
    still, _ = missing_libraries(root, names_in(loader_dirs()))
    if fatal := needed_now(root, still):
        item = fatal[0]
        tried = [chosen[item.library]] if item.library in chosen else requested
        raise Failed(
            f"the shared library {item.library}, needed by the Python package "
            f"{item.packages()} ({item.example()}), is not in the base image and "
            + (f"{', '.join(tried)} did not provide it" if tried else
               "no package found here provides it")
            + ". Give --system-package with the Debian package that holds it, or --base-image "
            "with an image that has it."
        )  # fmt: skip
    why = {p: [lib for lib, c in chosen.items() if c == p] for p in packages}
    return [
        f"installed the system package {p}"
        + (f" ({', '.join(why[p])} for {', '.join(_needers(missing, why[p]))})" if why[p] else
           " (--system-package)")
        for p in packages
    ] + not_needed_now(still)  # fmt: skip


def _needers(missing: list[Missing], libraries: list[str]) -> list[str]:
    return sorted({d for m in missing if m.library in libraries for d, _ in m.needed_by})


def main(argv: list[str]) -> int:
    root, request_file = argv[1], argv[2]
    with open(request_file, encoding="utf-8") as f:
        requested = [str(p) for p in json.load(f)]
    try:
        for line in install(root, requested):
            say(line)
    except Failed as exc:
        print(ERROR_PREFIX + one_line(str(exc)), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
