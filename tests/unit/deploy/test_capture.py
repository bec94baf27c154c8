"""Reading data capture (steps/deploy/capture.py): the server's own lines read back, what a
container running model code could write instead (each attack kept as a test), the cursor a
resumed controller goes on from, and the pairs the disagreement metric judges."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from steps.deploy.capture import CaptureReader, Record, pairs, parse_line, read_lines
from steps.serve.server import CaptureSettings, CaptureWriter, capture_line

NOON = 1796731384.123  # 2026-12-08T12:03:04.123Z
HOUR = "candidate/2026/12/08/12"


def line(rid: str = "r1", status: int = 200, output: bytes = b'{"predictions": [1.5]}',
         sample: float = 1.0, when: float = NOON, body: bytes = b'{"inputs": [[1]]}',
         content_type: str = "application/json") -> str:  # fmt: skip
    settings = CaptureSettings("/unused", "candidate", sample, 65536)
    return capture_line(
        settings, rid, when, status, 0.0042, (content_type, body), ("application/json", output)
    )


def write(root: Path, relative: str, text: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as out:
        out.write(text.encode() if isinstance(text, str) else text)
    return path


# ----- lines ----------------------------------------------------------------------------------


def test_the_servers_line_reads_back_as_its_record() -> None:
    record = parse_line(line(), "candidate")
    assert record == Record(
        request_id="r1", time=pytest.approx(NOON, abs=1e-3), variant="candidate", status=200,
        latency=pytest.approx(0.0042), input='{"inputs": [[1]]}', output='{"predictions": [1.5]}',
    )  # fmt: skip
    sampled_out = parse_line(line(sample=0.0), "candidate")
    assert sampled_out is not None and (sampled_out.input, sampled_out.output) == (None, None)
    text = parse_line(line(content_type="application/x-anything", body=b"caf\xc3\xa9"), "x")
    assert text is not None and text.input == "café"  # base64 of UTF-8: its text
    binary = parse_line(line(content_type="application/vnd.apache.parquet", body=b"\xff"), "x")
    assert binary is not None and binary.input is None  # base64 of bytes: no text


def test_sagemakers_own_lines_without_status_or_latency_are_read() -> None:
    sagemaker = {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                              "data": "1,2", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                               "mode": "OUTPUT", "data": "0.7", "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": "0f8c49b7-1e2f-4a3b-9c5d-6e7f8a9b0c1d",
                          "inferenceTime": "2026-12-08T12:03:04Z"},
        "eventVersion": "0",
    }  # fmt: skip
    record = parse_line(json.dumps(sagemaker), "AllTraffic")
    assert record is not None
    assert (record.status, record.latency, record.input, record.output) == (
        None,
        None,
        "1,2",
        "0.7",
    )
    assert record.time == 1796731384.0


def good() -> dict[str, Any]:
    return dict(json.loads(line()))


def changed(path: str, value: Any) -> str:
    event = good()
    *parents, last = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    target[last] = value
    return json.dumps(event)


@pytest.mark.parametrize(
    "bad",
    [
        "not json", "[1, 2]", "null", '"a string"', "{}", '{"eventMetadata": []}',
        changed("eventMetadata.eventId", 7),
        changed("eventMetadata.eventId", "../../etc/passwd"),
        changed("eventMetadata.eventId", "x" * 129),
        changed("eventMetadata.inferenceTime", "yesterday"),
        changed("eventMetadata.inferenceTime", "2026-13-45T99:99:99.000Z"),
        changed("eventMetadata.status", "200"),
        changed("eventMetadata.status", True),
        changed("eventMetadata.status", 10**9),
        changed("eventMetadata.latencyMs", -1),
        changed("eventMetadata.latencyMs", "3"),
        line().replace('"latencyMs":4.2', '"latencyMs":NaN'),
        line().replace('"latencyMs":4.2', '"latencyMs":Infinity'),
        changed("captureData", [1]),
        changed("captureData.endpointInput", "text"),
        changed("captureData.endpointInput.data", 12),
        changed("captureData.endpointInput.encoding", "GZIP"),
        changed("captureData.endpointInput.encoding", "BASE64"),  # not base64 text
        "[" * 100_000 + "]" * 100_000,  # past Python's recursion limit
        '{"eventMetadata": {"eventId": "a", "inferenceTime": 1' + "0" * 5000 + "}}",
    ],
)  # fmt: skip
def test_a_line_that_is_not_the_servers_is_skipped(bad: str) -> None:
    assert "NaN" not in bad or '"latencyMs":NaN' in bad  # the replace took
    assert parse_line(bad, "candidate") is None
    assert parse_line(bad.encode(), "candidate") is None


def test_lines_are_read_skipping_and_counting_the_bad_ones() -> None:
    records, skipped = read_lines(
        [line("a"), "garbage", b"\xff\xfe", line("b").encode(), "x" * (2**20 + 1)], "champion"
    )
    assert [r.request_id for r in records] == ["a", "b"] and skipped == 3
    assert {r.variant for r in records} == {"champion"}


# ----- files ----------------------------------------------------------------------------------


def test_files_the_server_writes_are_read_once_and_a_resumed_reader_goes_on(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(str(tmp_path), "candidate", 1.0, 65536))
    writer.write([(NOON, line("a")), (NOON + 3600, line("b", when=NOON + 3600))])
    write(tmp_path, "champion/2026/12/08/12/20261208T120000-9.jsonl", line("other-variant"))
    reader = CaptureReader(tmp_path, "candidate")
    assert [r.request_id for r in reader.read()] == ["a", "b"]
    assert reader.read() == []  # read once
    writer.write([(NOON + 3601, line("c")), (NOON + 3602, line("d"))])
    cursor = json.loads(json.dumps(reader.cursor))  # through the state file
    resumed = CaptureReader(tmp_path, "candidate", cursor)
    assert [r.request_id for r in resumed.read()] == ["c", "d"]
    assert [r.request_id for r in reader.read()] == ["c", "d"]
    assert reader.skipped == resumed.skipped == 0 and reader.refused == []


def test_a_line_being_written_waits_until_it_is_whole(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HOUR}/f.jsonl", line("a") + line("b")[:30])
    reader = CaptureReader(tmp_path, "candidate")
    assert [r.request_id for r in reader.read()] == ["a"]
    write(tmp_path, f"{HOUR}/f.jsonl", line("b")[30:])
    assert [r.request_id for r in reader.read()] == ["b"]
    assert reader.cursor == {"files": {f"{HOUR}/f.jsonl": {"offset": path.stat().st_size,
                                                         "skip": False}}}  # fmt: skip


def test_only_the_servers_layout_is_read(tmp_path: Path) -> None:
    for relative in ("candidate/notes.jsonl", "candidate/2026/12/08/12/f.txt",
                     "candidate/2026/12/08/f.jsonl", "candidate/20266/12/08/12/f.jsonl",
                     "candidate/2026/12/08/12/x/f.jsonl", "f.jsonl"):  # fmt: skip
        write(tmp_path, relative, line("stray"))
    write(tmp_path, f"{HOUR}/f.jsonl", line("kept"))
    assert [r.request_id for r in CaptureReader(tmp_path, "candidate").read()] == ["kept"]
    assert CaptureReader(tmp_path / "none", "candidate").read() == []


def test_symbolic_links_are_never_followed_out_of_the_capture_dir(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.jsonl", line("outside"))
    write(outside, "candidate/2026/12/08/12/f.jsonl", line("outside-tree"))
    write(outside, "2026/12/08/12/f.jsonl", line("outside-hour"))
    root = tmp_path / "capture"
    write(root, f"{HOUR}/real.jsonl", line("inside"))
    os.symlink(outside / "secret.jsonl", root / HOUR / "link.jsonl")
    os.symlink(outside / "2026", root / "candidate" / "2025")
    os.symlink(outside / "candidate", root / "champion")  # a whole variant
    reader = CaptureReader(root, "candidate")
    assert [r.request_id for r in reader.read()] == ["inside"]
    assert sorted(reader.refused) == [
        "candidate/2025: not a directory (a symbolic link?)",
        f"{HOUR}/link.jsonl: cannot be opened as a file (a symbolic link?)",
    ]
    champion = CaptureReader(root, "champion")
    assert champion.read() == []
    assert champion.refused == ["champion: not a directory (a symbolic link?)"]


def test_a_fifo_named_like_a_capture_file_is_refused_without_hanging(tmp_path: Path) -> None:
    (tmp_path / HOUR).mkdir(parents=True)
    os.mkfifo(tmp_path / HOUR / "a.jsonl")
    write(tmp_path, f"{HOUR}/b.jsonl", line("b"))
    reader = CaptureReader(tmp_path, "candidate")
    assert [r.request_id for r in reader.read()] == ["b"]
    assert reader.refused == [f"{HOUR}/a.jsonl: not a regular file"]


def test_a_huge_line_is_skipped_once_even_before_it_ends(tmp_path: Path) -> None:
    name = f"{HOUR}/f.jsonl"
    write(tmp_path, name, line("a") + "x" * 5000)  # no end yet
    reader = CaptureReader(tmp_path, "candidate", max_line=1000)
    assert [r.request_id for r in reader.read()] == ["a"]
    assert reader.skipped == 1 and reader.cursor["files"][name]["skip"] is True
    write(tmp_path, name, "y" * 5000 + "\n" + line("b") + "z" * 1200 + "\n" + line("c"))
    resumed = CaptureReader(tmp_path, "candidate", reader.cursor, max_line=1000)
    assert [r.request_id for r in resumed.read()] == ["b", "c"]
    assert resumed.skipped == 1  # the ended huge line is not counted again; the z one is


def test_a_look_reads_at_most_its_budget_and_the_rest_next_time(tmp_path: Path) -> None:
    text = "".join(line(f"r{n}") for n in range(100))
    write(tmp_path, f"{HOUR}/f.jsonl", text)
    reader = CaptureReader(tmp_path, "candidate", budget=len(text) // 4)
    got = [len(reader.read()) for _ in range(6)]
    assert 0 < got[0] < 100 and sum(got) == 100 and got[-1] == 0


@pytest.mark.parametrize(
    "cursor",
    [{"files": []}, {"files": {"a": {"offset": -1, "skip": False}}},
     {"files": {"a": {"offset": "0", "skip": False}}}, {"files": {"a": {"offset": 0}}},
     {"files": {"a": {"offset": True, "skip": False}}}],
)  # fmt: skip
def test_a_malformed_cursor_is_refused(cursor: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capture cursor"):
        CaptureReader(tmp_path, "candidate", cursor)


def test_a_variant_that_is_not_a_name_is_refused(tmp_path: Path) -> None:
    for bad in ("../x", "a/b", "", "."):
        with pytest.raises(ValueError, match="is not a variant name"):
            CaptureReader(tmp_path, bad)


# ----- pairs ----------------------------------------------------------------------------------


def record(rid: str, output: str | None, status: int | None = 200, when: float = NOON) -> Record:
    return Record(rid, when, "x", status, 0.01, "{}", output)


def predictions(value: Any) -> str:
    return json.dumps({"predictions": value})


@pytest.mark.parametrize(
    ("champion", "candidate", "agree"),
    [
        ([1.0, 2.0], [1.0, 2.0], True),
        ([1.0, 2.0], [1.0, 2.0 + 1e-4], True),  # within the tolerance
        ([1.0, 2.0], [1.0, 2.01], False),
        ([1.0, 2.0], [1.0], False),
        (["cat", "dog"], ["cat", "dog"], True),
        (["cat"], ["Cat"], False),
        ([1], [True], False),  # a number is not a label
        ([0], [False], False),
        ([None], [0], False),
        ([{"p": 0.5, "label": "a"}], [{"p": 0.5001, "label": "a"}], True),
        ([{"p": 0.5}], [{"q": 0.5}], False),
        ([[1, 2], [3, 4]], [[1, 2], [3, 4.00001]], True),
        ("NaN", "NaN", True),
        ("NaN", 1.0, False),
    ],
)  # fmt: skip
def test_predictions_agree_when_equal_numbers_within_the_tolerance(
    champion: Any, candidate: Any, agree: bool
) -> None:
    def output(value: Any) -> str:
        return '{"predictions": NaN}' if value == "NaN" else predictions(value)

    got = pairs([record("r", output(champion))], [record("r", output(candidate))], 1e-3)
    assert [p.agree for p in got] == [agree]


def test_pairs_join_answered_requests_by_id_in_time_order() -> None:
    champion = [
        record("a", predictions([0.2, 9]), when=NOON + 2),
        record("b", predictions([0.4])),
        record("c", predictions([1])),  # the candidate failed it
        record("d", None),  # sampled out
        record("e", predictions(["yes"])),
        record("f", predictions([7])),  # only the champion saw it
        record("a", predictions([99])),  # a duplicate: the first counts
        record("g", "0.5\n", status=None),  # SageMaker's own, CSV: compared as text
    ]
    candidate = [
        record("a", predictions([0.2, 9]), when=NOON + 1),
        record("b", predictions([0.5]), when=NOON + 5),
        record("c", '{"error_code": "INTERNAL_ERROR"}', status=500),
        record("d", predictions([3])),
        record("e", predictions(["no"])),
        record("g", "0.5\n", status=None),
        record("h", predictions([1])),
    ]
    got = pairs(champion, candidate, 0.0)
    assert [(p.request_id, p.agree, p.champion_value, p.candidate_value, p.time) for p in got] == [
        ("e", False, None, None, NOON),
        ("g", True, 0.5, 0.5, NOON),
        ("a", True, 0.2, 0.2, NOON + 2),
        ("b", False, 0.4, 0.5, NOON + 5),
    ]


def test_pairs_survive_what_a_model_could_answer() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    nested = json.dumps({"predictions": [[[{"a": [True, 3]}]]]})
    got = pairs(
        [record("deep", deep), record("nested", nested), record("inf", '{"predictions": [1e999]}')],
        [record("deep", deep), record("nested", nested), record("inf", '{"predictions": [1e999]}')],
        0.1,
    )
    by_id = {p.request_id: p for p in got}
    assert by_id["deep"].agree is True  # not JSON Python can nest: compared as text
    assert (by_id["nested"].agree, by_id["nested"].champion_value) == (True, 3.0)
    assert by_id["inf"].champion_value is None  # no finite number for PSI
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tolerance"):
            pairs([], [], bad)


def test_base64_text_reads_as_text() -> None:
    event = good()
    event["captureData"]["endpointOutput"] = {
        "observedContentType": "application/octet-stream", "mode": "OUTPUT",
        "data": base64.b64encode(b'{"predictions": [2]}').decode(), "encoding": "BASE64",
    }  # fmt: skip
    got = parse_line(json.dumps(event), "x")
    assert got is not None and got.output == '{"predictions": [2]}'


def test_a_reader_in_a_thread_never_blocks_the_writer(tmp_path: Path) -> None:
    """The server appends while deploy reads: what each read gets is whole lines only."""

    async def serve() -> list[str]:
        writer = CaptureWriter(CaptureSettings(str(tmp_path), "candidate", 1.0, 65536))
        reader = CaptureReader(tmp_path, "candidate")
        got: list[str] = []
        for n in range(50):
            writer.add(NOON, line(f"r{n}"))
            if n % 10 == 9:
                await writer.flush()
                got += [r.request_id for r in await asyncio.to_thread(reader.read)]
        await writer.close()
        got += [r.request_id for r in reader.read()]
        assert reader.skipped == 0
        return got

    assert asyncio.run(serve()) == [f"r{n}" for n in range(50)]


def test_answers_no_other_variant_has_cannot_grow_the_state_file(tmp_path: Path) -> None:
    """Model code can write its own capture lines: 60 answers of ~0.9 MiB with request ids
    the champion never saw were all kept waiting for their other half, in the cursor the
    controller writes into its state file at every look (~54 MB, and more each look)."""
    from steps.deploy.capture import join_pending

    big = predictions(["x" * 900_000])  # over the server's 64 KiB: written by model code

    def forged_line(i: int) -> str:
        event = json.loads(line(f"forged-{i}", when=NOON + i / 10))
        event["captureData"]["endpointOutput"]["data"] = big
        return json.dumps(event) + "\n"

    write(tmp_path, f"{HOUR}/forged.jsonl", "".join(forged_line(i) for i in range(60)))
    forged = CaptureReader(tmp_path, "candidate").read()
    assert len(forged) == 60 and all(r.output == big for r in forged)
    honest = [record("r1", predictions([1.0]))]
    found, left = join_pending(honest, forged + [record("r1", predictions([1.0]))], {}, 0.0)
    assert [pair.request_id for pair in found] == ["r1"]
    assert len(json.dumps(left)) < 8 * 2**20
    again, _ = join_pending([record("forged-59", big)], [], json.loads(json.dumps(left)), 0.0)
    assert [pair.request_id for pair in again] == ["forged-59"]  # the newest still joins
