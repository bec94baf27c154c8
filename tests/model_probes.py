"""What a hostile model's code tries beyond its own environment, shared by package's and gate's
credential tests: source text a test's model file starts with, run where the model is loaded."""

PROBES = """\
import glob as _glob
import os as _os
import socket as _socket

SOCKETS = ("/run/docker.sock", "/var/run/docker.sock")


def environs():  # every process's environment this one can read, its parent's first
    text = ""
    for path in [f"/proc/{_os.getppid()}/environ", *_glob.glob("/proc/*/environ")]:
        try:
            text += open(path, "rb").read().decode(errors="replace")
        except OSError:
            pass
    return text


def reaches(address):  # a loopback service of the job (a registry, MLflow)
    host, port = address.rsplit(":", 1)
    try:
        _socket.create_connection((host, int(port)), timeout=3).close()
        return True
    except OSError:
        return False


def docker_sockets():
    return [p for p in SOCKETS if _os.path.exists(p)]


"""


def assert_contained(seen: dict[str, object], secrets: list[str]) -> None:
    """What a probe saw: no secret in any process's environment, no Docker socket, no loopback
    service (the record's keys: environs, docker, reaches)."""
    environs = str(seen["environs"])
    assert environs, "the probe read no environment at all, not even its own"
    # (Messages of their own: pytest rewrites the asserts of test modules only.)
    leaked = [v[:6] + "…" for v in secrets if v in environs]
    assert not leaked, f"secrets read through /proc/*/environ: {leaked}"
    assert seen["docker"] == [], f"the Docker socket is there: {seen['docker']}"
    assert seen["reaches"] is False, "a loopback service of the job answered"
