"""Shared objects written byte by byte, one case each (a run path, a driver library, another
machine's file, a forged name), and the venv they sit in: what a wheel would install, without
an index to install it from. Used by the system libraries' unit tests and by the integration
tests that run the finder with the real apt of a base image."""

from __future__ import annotations

import struct
from pathlib import Path

from steps.services.images import system_libraries as sl

X86_64, AARCH64 = 62, 183


def elf(path: Path, needed: list[str], run_path: str = "", machine: int = 0) -> Path:
    """A 64-bit little-endian shared object with a dynamic section and nothing else."""
    machine = machine or sl._machine()
    names = needed + ([run_path] if run_path else [])
    strings, offsets = b"\0", []
    for name in names:
        offsets.append(len(strings))
        strings += name.encode() + b"\0"
    entries = [(sl._NEEDED, off) for off in offsets[: len(needed)]]
    if run_path:
        entries.append((sl._RUNPATH, offsets[-1]))
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in [*entries, (0, 0)])
    str_at = 64
    dyn_at = str_at + len(strings) + (-len(strings) % 8)
    sh_at = dyn_at + len(dynamic)
    sections = [
        (0,) * 10,
        (0, 3, 0, 0, str_at, len(strings), 0, 0, 1, 0),
        (0, sl._SHT_DYNAMIC, 0, 0, dyn_at, len(dynamic), 1, 0, 8, 16),
    ]
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF\x02\x01\x01" + bytes(9), 3, machine, 1, 0, 0, sh_at, 0, 64, 0, 0, 64,
        len(sections), 0,
    )  # fmt: skip
    body = header + strings.ljust(dyn_at - str_at, b"\0") + dynamic
    body += b"".join(struct.pack("<IIQQQQIIQQ", *s) for s in sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


def venv(tmp_path: Path) -> Path:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    return tmp_path / "venv"


def installed(root: Path, dist: str, files: dict[str, Path]) -> None:
    """Record files as a distribution's (its dist-info RECORD), as pip does."""
    site = next(root.glob("lib/python*/site-packages"))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    records = [f"{p.relative_to(site).as_posix()},," for p in files.values()]
    (info / "RECORD").write_text("\n".join([*records, f"{info.name}/RECORD,,"]) + "\n")
