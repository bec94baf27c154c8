"""Fills the dependencies image's venv, in the build stage of its Dockerfile: with uv where it
is there and can do the install as pip would, else with pip, saying why in one line.

Two commands, two RUN steps (the first one cached per base by the engine's layer cache):
- ``get-uv``: keep this machine's uv when the package step copied it here and it runs on the
  base; else install uv with the base's pip (``pip install --target``, the same index and CA
  settings the requirements use). It never fails the build: a reason file says why not.
- ``install``: make /opt/venv and install requirements.txt into it with uv, or with pip when
  uv is missing, cannot run here, or the base configures pip in a way uv does not read (an
  internal index in a pip.conf must never be bypassed for the public one), or uv fails.

uv lives in the build stage only: the final stage copies /opt/venv and nothing else of it.
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

# build.py's DEPS_DIR and INSTALLER_DIR (this file runs alone in the build: it imports none).
HERE = "/opt/mlsteps"
VENV = "/opt/venv"
PYTHON = VENV + "/bin/python"
UV = HERE + "/installer/uv"
WHY_NOT_UV = HERE + "/installer/why-not-uv"
REQUIREMENTS = HERE + "/requirements.txt"
# A binary wheel only (uv's sdist needs Rust); any uv from the first with every flag used here.
UV_REQUIREMENT = "uv>=0.5"
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
    argv = [UV, "pip", "install", "--python", PYTHON, "--no-cache", "--link-mode", "copy",
            # The base's own trust store, as Debian's pip uses it (a TLS proxy's CA added there).
            "--native-tls", "--no-python-downloads"]  # fmt: skip
    if index:
        argv += ["--index-url", str(index)]
    for url in dict.fromkeys(str(u) for u in extras):
        argv += ["--extra-index-url", url]
    # pip takes each requirement's best version from all the indexes together; uv by default
    # takes the first index that has the project. --pip-extra-index-url promises pip's
    # behaviour, so uv is asked for pip's (which is also what makes it "unsafe": the choice
    # between an internal and a public index is the same as the user's pip makes).
    argv += ["--index-strategy", "unsafe-best-match", "-r", REQUIREMENTS]
    env = dict(environ, UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
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


def get_uv(settings: dict[str, Any], environ: dict[str, str]) -> None:
    if untranslated(environ):
        return  # pip installs the requirements: no uv to get
    why = ""
    if os.path.isfile(UV):
        os.chmod(UV, 0o755)
        version, why = uv_version()
        if version:
            return
        os.remove(UV)
        why = "this machine's uv: " + why + "; "
    target = "/tmp/mlsteps-uv"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
         "--no-compile", "--no-deps", "--only-binary", ":all:", "--target", target,
         *pip_options(settings), UV_REQUIREMENT],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode == 0 and os.path.isfile(target + "/bin/uv"):
        shutil.move(target + "/bin/uv", UV)
    else:
        why += f"the base's pip could not install uv ({last_line(done.stdout + done.stderr)})"
    shutil.rmtree(target, ignore_errors=True)
    if why and not os.path.isfile(UV):
        with open(WHY_NOT_UV, "w", encoding="utf-8") as f:
            f.write(why)


def make_venv() -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", VENV], check=True)


def install_with_uv(settings: dict[str, Any], environ: dict[str, str]) -> str:
    """'' when uv installed the requirements, else why it did not."""
    why = untranslated(environ)
    if not why and not os.path.isfile(UV):
        why = "uv could not be had"
        if os.path.isfile(WHY_NOT_UV):
            with open(WHY_NOT_UV, encoding="utf-8") as f:
                why += ": " + f.read()
    version = ""
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
    pip, own = [sys.executable, "-m", "pip", "--python", PYTHON], False
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


def main(argv: list[str]) -> int:
    settings, environ = load_settings(), dict(os.environ)
    if argv[1:] == ["get-uv"]:
        try:
            get_uv(settings, environ)
        except Exception as exc:  # never a failure pip would not have had
            with open(WHY_NOT_UV, "w", encoding="utf-8") as f:
                f.write(f"getting it failed ({exc})")
        return 0
    why = install_with_uv(settings, environ)
    if not why:
        return 0
    say(f"installing the requirements with pip, not uv: {why}")
    return install_with_pip(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
