"""The model server's data capture, piece by piece: its settings, which requests it samples,
the line it writes (SageMaker's format) and the writer that appends lines to files. The server
serving real requests with capture on is tests/integration/test_serve_capture.py."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from steps.serve import server
from steps.serve.server import (
    CaptureSettings,
    CaptureWriter,
    capture_line,
    capture_settings,
    request_id,
    sampled,
)

NOON = 1796731384.123  # 2026-12-08T12:03:04.123Z


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("MLSTEPS_CAPTURE_DIR", "MLSTEPS_CAPTURE_SAMPLE", "MLSTEPS_CAPTURE_MAX_BYTES",
                 "MLSTEPS_VARIANT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def settings(tmp_path: Path, sample: float = 1.0, max_bytes: int = 65536) -> CaptureSettings:
    return CaptureSettings(str(tmp_path), "candidate", sample, max_bytes)


# ----- settings -------------------------------------------------------------------------------


def test_capture_is_off_unless_its_directory_is_set(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("MLSTEPS_CAPTURE_SAMPLE", "0.5")  # alone, it turns nothing on
    assert capture_settings() is None
    env.setenv("MLSTEPS_CAPTURE_DIR", str(tmp_path))
    assert capture_settings() == CaptureSettings(str(tmp_path), "AllTraffic", 0.5, 65536)
    env.setenv("MLSTEPS_VARIANT", "candidate-2")
    env.setenv("MLSTEPS_CAPTURE_MAX_BYTES", "1024")
    assert capture_settings() == CaptureSettings(str(tmp_path), "candidate-2", 0.5, 1024)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MLSTEPS_CAPTURE_DIR", "relative/dir", "is not a directory this server"),
        ("MLSTEPS_CAPTURE_DIR", "/no/such/dir", "is not a directory this server"),
        ("MLSTEPS_CAPTURE_DIR", "FILE", "is not a directory this server"),
        ("MLSTEPS_VARIANT", "../../etc", "is not a variant name"),
        ("MLSTEPS_VARIANT", "a/b", "is not a variant name"),
        ("MLSTEPS_VARIANT", "x" * 64, "is not a variant name"),
        ("MLSTEPS_VARIANT", "-lead", "is not a variant name"),
        ("MLSTEPS_CAPTURE_SAMPLE", "1.5", "is not a share from 0 to 1"),
        ("MLSTEPS_CAPTURE_SAMPLE", "-0.1", "is not a share from 0 to 1"),
        ("MLSTEPS_CAPTURE_SAMPLE", "nan", "is not a share from 0 to 1"),
        ("MLSTEPS_CAPTURE_SAMPLE", "10%", "is not a share from 0 to 1"),
        ("MLSTEPS_CAPTURE_MAX_BYTES", "64KiB", "is not a positive whole number of bytes"),
        ("MLSTEPS_CAPTURE_MAX_BYTES", "0", "is not a positive whole number of bytes"),
    ],
)
def test_a_bad_setting_is_refused_by_its_name(
    variable: str, value: str, says: str, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    env.setenv("MLSTEPS_CAPTURE_DIR", str(tmp_path))
    env.setenv(variable, str(tmp_path / "file") if value == "FILE" else value)
    with pytest.raises(ValueError) as caught:
        capture_settings()
    assert str(caught.value).startswith(f"{variable}=")
    assert says in str(caught.value)
    assert "unset it" in str(caught.value)


# ----- sampling and request ids ---------------------------------------------------------------


def test_sampling_follows_the_request_id_so_both_variants_pick_the_same_requests() -> None:
    ids = [f"{n:032x}" for n in range(20000)]
    picked = [i for i in ids if sampled(i, 0.3)]
    assert picked == [i for i in ids if sampled(i, 0.3)]  # the same ids every time
    assert 0.28 < len(picked) / len(ids) < 0.32
    assert set(picked) <= {i for i in ids if sampled(i, 0.6)}  # a larger share adds to it
    assert all(sampled(i, 1.0) for i in ids[:100])
    assert not any(sampled(i, 0.0) for i in ids)


def test_the_proxys_request_id_is_kept_and_anything_else_replaced() -> None:
    nginx = "f1d2d2f924e986ac86fdf7b36c94bcdf"
    assert request_id({b"x-request-id": nginx.encode()}) == nginx
    uuid4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    for bad in (b"", b"../../etc/passwd", b"a\nb", b"x" * 129, b'"},{"status":200', b"\xff"):
        assert uuid4.fullmatch(request_id({b"x-request-id": bad}))
    assert uuid4.fullmatch(request_id({}))
    assert request_id({}) != request_id({})


# ----- the line -------------------------------------------------------------------------------


def test_a_line_is_sagemakers_data_capture_with_status_and_latency(tmp_path: Path) -> None:
    line = capture_line(
        settings(tmp_path), "id-1", NOON, 200, 0.0032,
        ("application/json", b'{"inputs": [[1, 2]]}'),
        ("application/json", b'{"predictions": [0]}'),
    )  # fmt: skip
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": '{"inputs": [[1, 2]]}', "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": '{"predictions": [0]}', "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "id-1", "inferenceTime": "2026-12-08T12:03:04.123Z",
                          "status": 200, "latencyMs": 3.2},
        "eventVersion": "0",
    }  # fmt: skip


def test_csv_is_text_and_other_or_undecodable_bodies_are_base64(tmp_path: Path) -> None:
    def sides(content_type: str, body: bytes) -> dict[str, Any]:
        line = capture_line(settings(tmp_path), "id", NOON, 200, 0.1, (content_type, body),
                            ("text/plain", b"ok"))  # fmt: skip
        return dict(json.loads(line)["captureData"]["endpointInput"])

    csv = sides("text/csv; charset=utf-8", b"1,2\n3,4\n")
    assert (csv["encoding"], csv["data"]) == ("CSV", "1,2\n3,4\n")
    assert csv["observedContentType"] == "text/csv; charset=utf-8"
    for content_type, body in (("application/vnd.apache.parquet", b"PAR1\x00\xff"),
                               ("application/json", b'{"a": "\xff"}')):  # fmt: skip
        got = sides(content_type, body)
        assert got["encoding"] == "BASE64" and base64.b64decode(got["data"]) == body
    assert len(sides("x" * 5000, b"1")["observedContentType"]) == 200


def test_bodies_over_the_cap_or_unread_are_left_out_and_the_line_says_why(tmp_path: Path) -> None:
    big = b"[" + b"1," * 600 + b"1]"
    line = json.loads(
        capture_line(
            settings(tmp_path, max_bytes=1000),
            "id",
            NOON,
            200,
            0.1,
            ("application/json", big),
            ("application/json", b"[2]"),
        )  # fmt: skip
    )
    assert list(line["captureData"]) == ["endpointOutput"]
    assert line["eventMetadata"]["notCaptured"] == {
        "endpointInput": f"{len(big)} bytes, over MLSTEPS_CAPTURE_MAX_BYTES (1000)"
    }
    refused = json.loads(
        capture_line(
            settings(tmp_path, max_bytes=10),
            "id",
            NOON,
            413,
            0.001,
            None,
            ("application/json", b'{"error_code": "REQUEST_TOO_LARGE"}'),
        )  # fmt: skip
    )
    assert "captureData" not in refused
    assert refused["eventMetadata"]["status"] == 413
    assert refused["eventMetadata"]["notCaptured"] == {
        "endpointInput": "the body was not read",
        "endpointOutput": "35 bytes, over MLSTEPS_CAPTURE_MAX_BYTES (10)",
    }


def test_a_request_sampled_out_still_gets_its_line_without_bodies(tmp_path: Path) -> None:
    ids = [f"{n:032x}" for n in range(200)]
    lines = [json.loads(capture_line(settings(tmp_path, sample=0.25), i, NOON, 503, 0.5,
                                     ("text/csv", b"1"), ("text/csv", b"2")))
             for i in ids]  # fmt: skip
    with_data = [line["eventMetadata"]["eventId"] for line in lines if "captureData" in line]
    assert with_data == [i for i in ids if sampled(i, 0.25)] and 20 < len(with_data) < 80
    assert all(line["eventMetadata"]["status"] == 503 for line in lines)
    assert all(line["eventMetadata"]["latencyMs"] == 500.0 for line in lines)


# ----- the writer -----------------------------------------------------------------------------


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_lines_reach_the_hours_file_within_a_second_and_the_rest_at_close(tmp_path: Path) -> None:
    writer = CaptureWriter(settings(tmp_path))

    async def serve() -> tuple[list[Path], int]:
        writer.add(NOON, "first\n")
        writer.add(NOON + 3600, "next hour\n")
        await asyncio.sleep(1.5)  # no close yet: the flush that runs every second wrote them
        seen = files(tmp_path)
        written = sum(len(p.read_text().splitlines()) for p in seen)
        writer.add(NOON + 3601, "last\n")
        await writer.close()
        return seen, written

    seen, written = asyncio.run(serve())
    assert written == 2
    pid = os.getpid()
    assert [p.relative_to(tmp_path).as_posix() for p in seen] == [
        f"candidate/2026/12/08/12/20261208T120304-{pid}.jsonl",
        f"candidate/2026/12/08/13/20261208T130304-{pid}.jsonl",
    ]
    assert seen[0].read_text() == "first\n"
    assert seen[1].read_text() == "next hour\nlast\n"  # appended to the hour's file


def test_a_full_buffer_is_written_before_the_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "FLUSH_SECONDS", 30.0)
    monkeypatch.setattr(server, "FLUSH_BYTES", 100)
    writer = CaptureWriter(settings(tmp_path))

    async def serve() -> int:
        for n in range(11):
            writer.add(NOON, f"{n:09d}\n")  # 110 bytes
        await asyncio.sleep(0.5)
        count = sum(len(p.read_text().splitlines()) for p in files(tmp_path))
        await writer.close()
        return count

    assert asyncio.run(serve()) == 11


def test_a_write_that_fails_is_said_once_and_raises_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "candidate").write_text("a file where the variant's directory goes")
    writer = CaptureWriter(settings(tmp_path))
    for n in range(3):
        writer.write([(NOON, f"{n}\n")])
    err = capsys.readouterr().err
    assert err.count("mlsteps serve: capture lines are lost, it cannot write:") == 1
    assert "requests are served all the same" in err
    (tmp_path / "candidate").unlink()  # the disk is back: lines are written again
    writer.write([(NOON, "back\n")])
    assert [p.read_text() for p in files(tmp_path)] == ["back\n"]


def test_lines_past_the_pending_limit_are_dropped_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(server, "MAX_PENDING_BYTES", 20)

    async def serve() -> None:
        writer = CaptureWriter(settings(tmp_path))
        for n in range(5):
            writer.add(NOON, f"line {n:03d}\n")  # 9 bytes: two fit
        await writer.close()

    asyncio.run(serve())
    assert [p.read_text() for p in files(tmp_path)] == ["line 000\nline 001\n"]
    assert capsys.readouterr().err.count("capture lines are dropped") == 1


def test_a_close_without_any_line_writes_nothing(tmp_path: Path) -> None:
    asyncio.run(CaptureWriter(settings(tmp_path)).close())
    assert files(tmp_path) == []
