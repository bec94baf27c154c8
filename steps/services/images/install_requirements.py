"""Fills the dependencies image's venv, in the one RUN step of its Dockerfile that makes it:
with uv where it can be had and can do the install as pip would, else with pip, saying why in
one line.

uv is fetched with the base's pip (``pip install --target`` into /tmp, a binary wheel, the same
index and CA settings the requirements use), used, and removed before the step ends, so no
layer of the image holds it. It is not fetched where the base configures pip in a way uv does
not read (an internal index in a pip.conf must never be bypassed for the public one); pip
installs then, and also when uv cannot be had, cannot run on the base (musl, an old glibc) or
fails: never a failure pip would not have had.

It runs inside the build, so it uses Python's standard library only. Its settings are data
(install-settings.json); nothing read from the model reaches a command line but the
requirements file's path. Printed lines that start with ``mlsteps:`` are progress.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

# build.py's DEPS_DIR (this file runs alone in the build: it imports nothing of mlsteps).
HERE = "/opt/mlsteps"
VENV = "/opt/venv"
PYTHON = VENV + "/bin/python"
UV_DIR = "/tmp/mlsteps-uv"  # removed before the step ends
UV = UV_DIR + "/bin/uv"
REQUIREMENTS = HERE + "/requirements.txt"
# A binary wheel only (uv's sdist needs Rust), at the version .ci/constraints.txt pins (a test
# ties the two, and actions/install.sh's): the same install on every rebuild.
UV_REQUIREMENT = "uv==0.13.10"
# The pip settings uv is given as its own (below); and those that change nothing of what is
# installed or from where. Any other PIP_* variable or a pip.conf sends the install to pip.
TRANSLATED = {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT"}
HARMLESS = {
    "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_DEFAULT_TIMEOUT", "PIP_NO_INPUT",
    "PIP_ROOT_USER_ACTION", "PIP_NO_WARN_SCRIPT_LOCATION", "PIP_PROGRESS_BAR", "PIP_NO_COMPILE",
    "PIP_BREAK_SYSTEM_PACKAGES",
}  # fmt: skip


def say(line: str) -> None:
    # One line each, whatever an error text holds (a newline would start a line of its own).
    print("mlsteps: " + " ".join(line.split()), flush=True)


def last_line(text: str) -> str:
    """The error of a tool's output in one line: its first error line and the cause uv gives
    under it (which names the URL that failed), else its last line; no URL's password."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["no output"]
    first = next((i for i, line in enumerate(lines) if line.lower().startswith("error")), None)
    if first is None:
        found = lines[-1]
    else:
        # "cause:" in uv 0.13, "Caused by:" before.
        causes = [x for x in lines[first + 1 :] if x.startswith(("cause:", "Caused by"))][:1]
        found = "; ".join([lines[first], *causes])
    return re.sub(r"://[^/@\s]*@", "://***@", found)[:400]


def load_settings(path: str = HERE + "/install-settings.json") -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return dict(json.load(f))


def pip_options(settings: dict[str, Any]) -> list[str]:
    options = []
    if settings.get("index_url"):
        options += ["--index-url", str(settings["index_url"])]
    for url in list(settings.get("extra_index_urls") or []):
        options += ["--extra-index-url", str(url)]
    if settings.get("cert"):
        options += ["--cert", str(settings["cert"])]
    return options


def pip_config_files(environ: dict[str, str]) -> list[str]:
    """The pip.conf files pip would read here (site-wide, per user, per interpreter)."""
    home = environ.get("HOME") or "/root"
    dirs = (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
    user = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    places = [os.path.join(d, "pip", "pip.conf") for d in dirs if d] + [
        "/etc/pip.conf",
        os.path.join(user, "pip", "pip.conf"),
        os.path.join(home, ".pip", "pip.conf"),
        os.path.join(sys.prefix, "pip.conf"),
        os.path.join(sys.base_prefix, "pip.conf"),
        os.path.join(VENV, "pip.conf"),
    ]
    return [p for p in dict.fromkeys(places) if os.path.isfile(p)]


def untranslated(environ: dict[str, str], files: list[str] | None = None) -> str:
    """Why the base's pip settings keep uv out ('' when uv can be told all of them)."""
    files = pip_config_files(environ) if files is None else files
    if files:
        return f"the base configures pip in {files[0]}, which uv does not read"
    names = sorted(n for n in environ if n.startswith("PIP_") and n not in TRANSLATED | HARMLESS)
    if names:
        return f"the base sets {', '.join(names)}, which uv does not read"
    return ""


def uv_command(
    settings: dict[str, Any], environ: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """uv's argv and environment: the given settings first (as pip's options beat its
    environment), then the base's PIP_* ones."""
    index = settings.get("index_url") or environ.get("PIP_INDEX_URL")
    extras = list(settings.get("extra_index_urls") or [])
    extras += environ.get("PIP_EXTRA_INDEX_URL", "").split()
    cert = settings.get("cert") or environ.get("PIP_CERT")
    # --no-config: no uv.toml of the base's (its WORKDIR's, /etc/uv, a user's) is read, as pip
    # never would.
    argv = [UV, "--no-config", "pip", "install", "--python", PYTHON, "--no-cache",
            "--link-mode", "copy", "--no-python-downloads"]  # fmt: skip
    if index:
        argv += ["--index-url", str(index)]
    for url in dict.fromkeys(str(u) for u in extras):
        argv += ["--extra-index-url", url]
    # pip takes each requirement's best version from all the indexes together; uv by default
    # takes the first index that has the project. --pip-extra-index-url promises pip's
    # behaviour, so uv is asked for pip's (which is also what makes it "unsafe": the choice
    # between an internal and a public index is the same as the user's pip makes).
    argv += ["--index-strategy", "unsafe-best-match", "-r", REQUIREMENTS]
    # Nor a UV_* variable of the base's (an index, an override, bytecode compilation): uv is told
    # pip's settings and nothing else. The base's own trust store, as Debian's pip uses it (a TLS
    # proxy's CA added there), by variables: a uv that knows neither name ignores them.
    env = {name: value for name, value in environ.items() if not name.startswith("UV_")}
    env.update(UV_PYTHON_DOWNLOADS="never", NO_COLOR="1", UV_SYSTEM_CERTS="1", UV_NATIVE_TLS="1")
    if cert:
        env["SSL_CERT_FILE"] = str(cert)
    return argv, env


def uv_version() -> tuple[str, str]:
    """uv's version, or '' and why it does not run here (musl, an old glibc, another arch)."""
    try:
        done = subprocess.run([UV, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return "", f"uv does not run on the base ({exc})"
    words = done.stdout.split()
    if done.returncode != 0 or len(words) < 2 or words[0] != "uv":
        return "", f"uv does not run on the base ({last_line(done.stdout + done.stderr)})"
    return words[1], ""


def fetch_uv(settings: dict[str, Any]) -> str:
    """uv into UV_DIR with the base's pip: '' when it is there, else why not."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-m", "pip", "install", "--no-cache-dir", "--no-compile",
             "--disable-pip-version-check", "--no-deps", "--only-binary", ":all:",
             "--target", UV_DIR,
             *pip_options(settings), UV_REQUIREMENT],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError as exc:
        return f"the base's pip could not fetch uv ({exc})"
    if done.returncode != 0 or not os.path.isfile(UV):
        return f"the base's pip could not fetch uv ({last_line(done.stdout + done.stderr)})"
    say(f"fetched uv for this step in {time.monotonic() - started:.1f} s (removed after it)")
    return ""


def make_venv() -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-I", "-m", "venv", "--without-pip", VENV], check=True)


def install_with_uv(settings: dict[str, Any], environ: dict[str, str]) -> str:
    """'' when uv installed the requirements, else why it did not."""
    version = ""
    why = untranslated(environ) or fetch_uv(settings)
    if not why:
        version, why = uv_version()
    if why:
        return why
    started = time.monotonic()
    make_venv()
    argv, env = uv_command(settings, environ)
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        return f"uv could not install the requirements ({last_line(done.stdout)})"
    count = re.search(r"Installed (\d+) package", done.stdout)
    say(
        f"installed the requirements with uv {version} in {time.monotonic() - started:.1f} s"
        + (f" ({count.group(1)} package{'' if count.group(1) == '1' else 's'})" if count else "")
    )
    return ""


def install_with_pip(settings: dict[str, Any]) -> int:
    started = time.monotonic()
    make_venv()
    # The venv gets no pip of its own when the base's pip can install into it (pip --python,
    # pip >= 22.3): nothing to remove afterwards. An older or missing pip: the venv's own,
    # removed after (nothing installs at serving time).
    pip, own = [sys.executable, "-I", "-m", "pip", "--python", PYTHON], False
    if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
        subprocess.run([PYTHON, "-m", "ensurepip", "--default-pip"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        pip, own = [PYTHON, "-m", "pip"], True
    code = subprocess.run(
        [*pip, "install", "--no-cache-dir", "--no-compile", "--disable-pip-version-check",
         *pip_options(settings), "-r", REQUIREMENTS],
        stdin=subprocess.DEVNULL,
    ).returncode  # fmt: skip
    if own:
        subprocess.run(
            [PYTHON, "-m", "pip", "uninstall", "--yes", "--quiet", "--disable-pip-version-check",
             "pip", "setuptools", "wheel"],
            capture_output=True,
        )  # fmt: skip
    if code == 0:
        say(f"installed the requirements with pip in {time.monotonic() - started:.1f} s")
    return code


def main() -> int:
    settings, environ = load_settings(), dict(os.environ)
    try:
        why = install_with_uv(settings, environ)
    except Exception as exc:  # never a failure pip would not have had
        why = f"uv failed ({type(exc).__name__}: {exc})"
    finally:
        shutil.rmtree(UV_DIR, ignore_errors=True)
    if not why:
        return 0
    say(f"installing the requirements with pip, not uv: {why}")
    return install_with_pip(settings)


if __name__ == "__main__":
    sys.exit(main())
