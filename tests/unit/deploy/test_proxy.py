"""steps/deploy/proxy.py: the config it renders (and that the real nginx accepts), the access
log it reads (retries, mirrors, rotation, lines that are not nginx's), and the names the docker
target refuses before they reach a container or a config. Real nginx, no Docker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from steps.core.errors import ConfigError, StepFailed
from steps.deploy import accesslog, proxy
from steps.deploy.observations import NO_ANSWER
from steps.deploy.options import check_image
from steps.deploy.targets.docker import DockerTarget, check_name

A, B = "127.0.0.1:18101", "127.0.0.1:18102"


def by_addr(addr: str, when: float) -> str | None:
    return {A: "champion", B: "candidate"}.get(addr)


def line(**fields: object) -> bytes:
    entry = {"id": "abc", "addr": A, "ustatus": "200", "utime": "0.004", "status": "200",
             "msec": "1700000000.123", "mirror": False, **fields}  # fmt: skip
    return json.dumps(entry).encode() + b"\n"


def nginx() -> str:
    try:
        return proxy.find_nginx()
    except StepFailed:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("nginx is not installed (apt-get install nginx)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ----- rendering ------------------------------------------------------------------------------


def test_weights_become_upstream_servers_and_zero_leaves_a_server_out() -> None:
    text = proxy.render(8000, [(18101, 95), (18102, 5)])
    assert "server 127.0.0.1:18101 weight=95;" in text
    assert "server 127.0.0.1:18102 weight=5;" in text
    assert "mirror /" not in text and "upstream mlsteps_mirror" not in text
    only = proxy.render(8000, [(18101, 100), (18102, 0)])
    assert "18102" not in only
    # Connection-level retries only: a model's own 5xx is never hidden from the judge.
    assert "proxy_next_upstream error timeout non_idempotent;" in only
    assert "http_5" not in only
    assert "proxy_set_header X-Request-ID $request_id;" in only


def test_shadow_mirrors_to_the_candidate_and_logs_the_copy_as_mirrored() -> None:
    text = proxy.render(8000, [(18101, 100), (18102, 0)], mirror=18102)
    assert f"mirror {proxy.MIRROR_LOCATION};" in text
    assert "server 127.0.0.1:18102;" in text  # the mirror's upstream, not the served one
    assert "weight=" not in text.split("upstream mlsteps_mirror")[1].split("}")[0]
    assert "log_subrequest on;" in text
    assert f"access_log {proxy.ACCESS_LOG} mlsteps_mirror;" in text
    assert "internal;" in text


@pytest.mark.parametrize(
    "served, mirror",
    [([(18101, 100)], None), ([(18101, 50), (18102, 50)], None),
     ([(18101, 100), (18102, 0)], 18102), ([(18101, 0), (18102, 100)], None),
     ([(18101, 75), (18102, 25)], 18102)],
)  # fmt: skip
def test_real_nginx_accepts_every_shape(
    tmp_path: Path, served: list[tuple[int, int]], mirror: int | None
) -> None:
    binary = nginx()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "c.conf").write_text(proxy.render(8000, served, mirror=mirror, read_timeout=2.5))
    done = subprocess.run(
        [binary, "-p", f"{tmp_path}/", "-c", str(tmp_path / "c.conf"), "-e",
         str(tmp_path / "e.log"), "-t"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "call",
    [
        lambda: proxy.render("8000; include /etc/passwd", [(18101, 100)]),
        lambda: proxy.render(8000, [("18101;\n}", 100)]),
        lambda: proxy.render(8000, [(18101, "100 backup")]),
        lambda: proxy.render(8000, [(18101, True)]),
        lambda: proxy.render(8000, [(18101, 101)]),
        lambda: proxy.render(8000, [(18101, 0)]),  # nothing would serve
        lambda: proxy.render(8000, [(18101, 100)], mirror=70000),
        lambda: proxy.render(8000, [(18101, 100)], read_timeout=float("nan")),
    ],
)
def test_anything_but_checked_integers_is_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    "name",
    ['x"; }', "a;b", "a\nb", "a}", "-rm", "a b", "../etc", "", "a" * 64, "ümlaut", "a$b", "a'b"],
)
def test_an_endpoint_name_that_would_break_out_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match="endpoint name"):
        check_name(name)
    with pytest.raises(ValueError, match="endpoint name"):
        DockerTarget(name, Path("/nonexistent"))


@pytest.mark.parametrize(
    "image",
    ['iris"; }', "iris;rm", "iris\nlatest", "iris}", "-iris", "iris latest", "iris:$(id)",
     "iris:tag:tag", "iris@sha256:zz", "", "a" * 600],
)  # fmt: skip
def test_an_image_reference_that_would_break_out_is_refused_by_name(image: str) -> None:
    with pytest.raises(ValueError, match="candidate image"):
        check_image(image, "candidate image")


def test_image_references_packages_give_are_accepted() -> None:
    for image in ("iris", "it-serving:model-cf70aecac5aa", "127.0.0.1:5000/team/iris:v1",
                  "iris@sha256:" + "a" * 64, "r.example/iris:1@sha256:" + "0" * 64):  # fmt: skip
        assert check_image(image) == image


# ----- the access log -------------------------------------------------------------------------


def test_a_retried_request_is_one_record_per_try_the_failed_one_against_its_variant() -> None:
    retried = line(addr=f"{B}, {A}", ustatus="502, 200", utime="0.001, 0.010")
    got = accesslog.parse_line(retried, by_addr)
    assert got is not None
    assert [(r.variant, r.status, r.latency) for r in got] == [
        ("candidate", NO_ANSWER, 0.001), ("champion", 200, 0.010),
    ]  # fmt: skip
    assert got[0].failed and not got[1].failed
    assert {r.request_id for r in got} == {"abc"}
    assert got[0].time == 1700000000.123


def test_a_mirrored_copy_is_marked_and_an_unknown_address_is_left_out() -> None:
    got = accesslog.parse_line(line(addr=B, mirror=True, ustatus="500"), by_addr)
    assert got is not None and got[0].mirrored and got[0].status == 500 and got[0].failed
    assert accesslog.parse_line(line(addr="127.0.0.1:9"), by_addr) == []
    # nginx answered itself (no upstream tried): nothing for the judge, not malformed either.
    assert accesslog.parse_line(line(addr="-", ustatus="-", utime="-"), by_addr) == []
    timeout = accesslog.parse_line(line(ustatus="504", utime="-"), by_addr)
    assert timeout is not None and timeout[0].latency == 0.0 and timeout[0].failed


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"id":"abc","addr":"127.0.0.1:18101"', b"[]", b"null",
     line(msec="soon"), line(msec="nan"), line(msec="1e400"), line(mirror="yes"),
     line(addr=5), line(ustatus="200, 200"),
     b'{"id":"x"}'],
)  # fmt: skip
def test_lines_that_are_not_nginx_s_are_refused(raw: bytes) -> None:
    assert accesslog.parse_line(raw, by_addr) is None


def test_the_cursor_reads_each_line_once_and_counts_what_it_skips(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(line(id="1") + b"garbage\n" + line(id="2") + line(id="3")[:30])
    seen, cursor = accesslog.read_log(log, {}, by_addr)
    assert [r.request_id for r in seen.requests] == ["1", "2"]
    assert cursor["malformed"] == 1 and not seen.source_error
    with log.open("ab") as more:  # the half-written line is finished, then another
        more.write(line(id="3")[30:] + line(id="4"))
    seen, cursor = accesslog.read_log(log, cursor, by_addr)
    assert [r.request_id for r in seen.requests] == ["3", "4"]
    seen, cursor = accesslog.read_log(log, cursor, by_addr)
    assert seen.requests == [] and cursor["malformed"] == 1


def test_a_truncated_or_rotated_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(line(id="1") + line(id="2"))
    _, cursor = accesslog.read_log(log, {}, by_addr)
    log.write_bytes(line(id="3"))  # truncated and rewritten: shorter than the cursor
    seen, cursor = accesslog.read_log(log, cursor, by_addr)
    assert [r.request_id for r in seen.requests] == ["3"]
    log.rename(tmp_path / "access.log.1")  # rotated: a new file (another inode), longer
    log.write_bytes(line(id="4") + line(id="5") + line(id="6"))
    seen, _ = accesslog.read_log(log, cursor, by_addr)
    assert [r.request_id for r in seen.requests] == ["4", "5", "6"]


def test_a_long_run_of_bytes_without_a_newline_is_skipped_not_read_forever(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"x" * (accesslog.MAX_LINE + 10))
    seen, cursor = accesslog.read_log(log, {}, by_addr)
    assert seen.requests == [] and cursor["malformed"] == 1
    assert cursor["offset"] == accesslog.MAX_LINE + 10


def test_a_missing_or_unreadable_log_is_a_source_error_not_a_pass(tmp_path: Path) -> None:
    since = {"inode": 1, "offset": 10, "malformed": 0}
    seen, cursor = accesslog.read_log(tmp_path / "gone.log", since, by_addr)
    assert "gone.log" in seen.source_error and seen.requests == []
    assert cursor == since
    (tmp_path / "dir.log").mkdir()
    seen, _ = accesslog.read_log(tmp_path / "dir.log", {}, by_addr)
    assert seen.source_error


def test_a_forged_cursor_reads_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(line(id="1"))
    seen, _ = accesslog.read_log(log, {"inode": "x", "offset": -5}, by_addr)
    assert [r.request_id for r in seen.requests] == ["1"]


# ----- the process ----------------------------------------------------------------------------


@pytest.fixture
def upstreams() -> Iterator[list[int]]:
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "http.server", str(p), "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for p in ports
    ]
    for port in ports:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
    yield ports
    for server in servers:
        server.kill()
        server.wait()


def test_start_reload_drain_stop_with_the_real_nginx(tmp_path: Path, upstreams: list[int]) -> None:
    nginx()
    one, two = upstreams
    listen = free_port()
    server = proxy.Nginx(tmp_path)
    try:
        server.start(proxy.render(listen, [(one, 100)]), listen)
        master = server.master()
        assert master is not None and len(server.workers()) == 1
        urllib.request.urlopen(f"http://127.0.0.1:{listen}/").read()
        old = server.reload(proxy.render(listen, [(one, 0), (two, 100)]))
        assert old and not (old & server.workers() - old)
        urllib.request.urlopen(f"http://127.0.0.1:{listen}/").read()
        assert server.drain(old, 10)
        assert server.master() == master  # graceful: the same master, new workers
        # nginx logs a request after its answer is sent: the line may come a moment later.
        for _ in range(50):
            seen, _ = accesslog.read_log(
                tmp_path / proxy.ACCESS_LOG, {},
                lambda addr, _when: {f"127.0.0.1:{one}": "a", f"127.0.0.1:{two}": "b"}.get(addr),
            )  # fmt: skip
            if len(seen.requests) == 2:
                break
            time.sleep(0.05)
        assert [r.variant for r in seen.requests] == ["a", "b"]
        # A config nginx refuses is never applied: the running one stays.
        with pytest.raises(StepFailed, match="refused"):
            server.reload("events {}\nhttp { nonsense; }\n")
        assert "nonsense" not in (tmp_path / proxy.CONF).read_text()
    finally:
        server.stop()
    assert server.master() is None
    assert not os.path.exists(f"/proc/{master}")


def test_a_port_in_use_is_bad_input_naming_listen_and_leaves_nothing(tmp_path: Path) -> None:
    nginx()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = proxy.Nginx(tmp_path)
        with pytest.raises(ConfigError, match=f"--listen {port}: .* in use"):
            server.start(proxy.render(port, [(18101, 100)]), port)
    assert server.master() is None


def test_nginx_missing_is_a_clear_failure(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="nginx is not installed"):
        proxy.find_nginx(str(tmp_path / "nginx"))


def test_the_listen_port_is_checked_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--listen {port}: .* in use by another program"):
            proxy.check_port(port)
    proxy.check_port(port)  # free again
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="--listen 80: .* cannot be bound by this user"):
            proxy.check_port(80)


def test_the_endpoint_directory_it_makes_is_private(tmp_path: Path) -> None:
    """It holds the access log and data capture (request bodies, predictions)."""
    target = DockerTarget("it-private", tmp_path / "endpoint")
    target._save({"endpoint": "it-private"})
    assert (tmp_path / "endpoint").stat().st_mode & 0o777 == 0o700
