"""Which secrets to read and what to call them: vault-action's syntax and mlsteps.yaml's list.

vault-action (hashicorp/vault-action), accepted as it is::

    secret/ml/db password | DB_PASSWORD ;
    secret/ml/db user ;                      # env name from the key: USER
    secret/ml/api *                          # every key of the secret, each under its own name
    secret/ml/api * | API_                   # the same, with a prefix: API_TOKEN, API_URL

The list form in mlsteps.yaml adds what one line cannot say::

    secrets:
      secrets:
        - {path: secret/ml/db, key: password, env: DB_PASSWORD, version: 3}
        - {path: secret/ml/extra, key: token, optional: true}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steps.core.secret import Secret

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LIST_KEYS = ("path", "key", "env", "version", "optional")


@dataclass(frozen=True)
class SecretSpec:
    path: str
    key: str  # a key, a dotted path into a JSON value (a.b), or * for every key
    env: str | None  # the name; for * a prefix; None: derived from the key
    version: int | None = None
    optional: bool = False

    @property
    def wildcard(self) -> bool:
        return self.key == "*"

    def describe(self) -> str:
        pinned = f" (version {self.version})" if self.version is not None else ""
        return f"{self.path} {self.key}{pinned}"


# Variables that change what a program runs, loads or trusts, where it sends its traffic, or
# what the runner and later steps do. A name a * request takes from the secret's own keys must
# not be one of these (credentials such as AWS_SECRET_ACCESS_KEY or DOCKER_PASSWORD are fine).
RUNS_PROGRAMS = re.compile(
    r"PATH|HOME|ENV|BASH_ENV|BASH_FUNC_.*|SHELLOPTS|BASHOPTS|IFS|PS4|PROMPT_COMMAND|CDPATH"
    r"|LD_.*|DYLD_.*|GCONV_PATH|NODE_OPTIONS|NODE_PATH|NODE_EXTRA_CA_CERTS|NPM_CONFIG_.*"
    r"|PYTHON.*|PIP_.*|PERL5.*|PERLLIB|RUBYOPT|RUBYLIB|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS"
    r"|JDK_JAVA_OPTIONS|CLASSPATH|GIT_.*|SSH_ASKPASS|EDITOR|VISUAL|PAGER|SSL_CERT_.*"
    r"|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|(HTTPS?|FTP|ALL|NO)_PROXY|DOCKER_HOST|DOCKER_CONFIG"
    r"|KUBECONFIG|VAULT_ADDR|VAULT_CACERT|GITHUB_.*|RUNNER_.*|ACTIONS_.*|MLSTEPS_.*",
    re.IGNORECASE,
)


def env_name_for(key: str) -> str:
    """vault-action's rule: dots become __, dashes go, other non-word characters go, upper case."""
    name = key.replace(".", "__").replace("-", "")
    name = re.sub(r"[^\w]", "", name, flags=re.ASCII)
    return name.upper()


def parse_specs(raw: Any) -> tuple[SecretSpec, ...]:
    """vault-action text (str, or several strings) or the YAML list of mappings → specs.

    Raises ValueError with the expected form, which config.resolve turns into a message that
    names where the value came from.
    """
    if raw is None:
        return ()
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        # The list form in a flag or an environment variable (an action input, a Jenkins
        # key): JSON or YAML flow style, so version and optional work outside the file too.
        from steps.core.values import YamlRefused, load_yaml

        try:
            raw = load_yaml(raw)
        except YamlRefused:
            raise ValueError(
                "a list such as [{path: secret/ml/db, key: password, version: 2}] "
                "(it starts with '[' but does not parse)"
            ) from None
        if not isinstance(raw, list) or not all(isinstance(i, Mapping) for i in raw):
            raise ValueError("a list of {path, key, env, version, optional} mappings")
    if isinstance(raw, str):
        return _parse_text(raw)
    if isinstance(raw, list | tuple):
        if all(isinstance(item, str) for item in raw):
            # Repeated flags, or the lines of a YAML list: each may be the list form itself.
            return tuple(spec for item in raw for spec in parse_specs(item))
        return tuple(_parse_mapping(item, i) for i, item in enumerate(raw, 1))
    raise ValueError(
        "vault-action lines ('PATH KEY | ENV_NAME ;') or a list of "
        "{path, key, env, version, optional} mappings"
    )


def _parse_text(text: str) -> tuple[SecretSpec, ...]:
    specs = []
    # vault-action splits on ';'; one request per line without the ';' is accepted too.
    for entry in re.split(r"[;\n]", text):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        head, bar, name = entry.rpartition("|") if "|" in entry else (entry, "", "")
        if bar and not name.strip():
            raise ValueError(f"a name after '|' in {entry!r}, e.g. 'secret/ml/db password | DB_PW'")
        parts = head.split()
        if len(parts) != 2:
            raise ValueError(
                f"'PATH KEY' or 'PATH KEY | ENV_NAME' in {entry!r} (a path and one key, "
                "separated by spaces; requests separated by ';' or new lines)"
            )
        path, key = parts[0].strip("/"), parts[1].replace('"', "")
        specs.append(_checked(SecretSpec(path, key, name.strip() or None)))
    return tuple(specs)


def _parse_mapping(item: Any, index: int) -> SecretSpec:
    if not isinstance(item, Mapping):
        raise ValueError(f"item {index}: a mapping such as {{path: secret/ml/db, key: password}}")
    unknown = [k for k in item if k not in LIST_KEYS]
    if unknown:
        raise ValueError(f"item {index}: only the keys {', '.join(LIST_KEYS)} (not {unknown[0]})")
    path, key = item.get("path"), item.get("key")
    if not isinstance(path, str) or not path.strip() or key is None or str(key) == "":
        raise ValueError(f"item {index}: both path and key (key '*' for every key)")
    version = item.get("version")
    if version is not None and (
        isinstance(version, bool) or not str(version).isdigit() or int(version) < 1
    ):
        raise ValueError(f"item {index}: version as a positive whole number")
    optional = item.get("optional", False)
    if not isinstance(optional, bool):
        raise ValueError(f"item {index}: optional as true or false")
    env = item.get("env")
    return _checked(
        SecretSpec(
            path.strip().strip("/"),
            str(key),
            str(env) if env is not None else None,
            int(version) if version is not None else None,
            optional,
        )
    )


def _checked(spec: SecretSpec) -> SecretSpec:
    if spec.env is not None:
        if not ENV_NAME.fullmatch(spec.env):
            raise ValueError(
                f"an environment variable name (letters, digits, _) for {spec.describe()}, "
                f"not {spec.env!r}"
            )
    elif not spec.wildcard and not env_name_for(spec.key):
        raise ValueError(f"a name ('| ENV_NAME') for {spec.describe()}: the key gives none")
    return spec


def check_names(specs: Sequence[SecretSpec]) -> None:
    """Two requests for one name would overwrite each other silently: say so up front."""
    seen: dict[str, SecretSpec] = {}
    for spec in specs:
        if spec.wildcard:
            continue
        name = spec.env or env_name_for(spec.key)
        if name in seen:
            raise ValueError(
                f"one name per secret: {name} is given to both {seen[name].describe()} and "
                f"{spec.describe()}; rename one with '| OTHER_NAME'"
            )
        seen[name] = spec


def pick(spec: SecretSpec, data: Mapping[str, Any]) -> dict[str, Secret] | None:
    """The named values spec selects from a secret's data; None when its key is missing.

    Raises ValueError when a key of a * request makes no variable name: the value would be
    lost (or, in a dotenv file, run as a command that prints it).
    """
    if spec.wildcard:
        prefix = spec.env or ""
        picked = {}
        for key, each in data.items():
            name = f"{prefix}{env_name_for(key)}"
            if not ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"{spec.describe()}: the key {key!r} makes no variable name ({name!r}); "
                    f"read it on its own with '{spec.path} {key} | NAME', or give * a prefix "
                    "('| PREFIX_')"
                )
            if not prefix and RUNS_PROGRAMS.fullmatch(name):
                # The name comes from the data: whoever may write this path could otherwise
                # turn a value into code run by the command or every later step
                # (LD_PRELOAD, BASH_ENV, NODE_OPTIONS … in $GITHUB_ENV).
                raise ValueError(
                    f"{spec.describe()}: the key {key!r} would set {name}, which changes what "
                    "programs run or trust; a * request does not set such a variable. Read it "
                    f"on its own with '{spec.path} {key} | {name}' if that is meant, or give * "
                    "a prefix ('| PREFIX_')"
                )
            picked[name] = Secret(_text(each))
        return picked
    value: Any = data
    # A key with a dot is first looked up whole (keys may contain dots), then as a path.
    if spec.key in data:
        value = data[spec.key]
    else:
        for part in spec.key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    return {spec.env or env_name_for(spec.key): Secret(_text(value))}


def _text(value: Any) -> str:
    # vault-action hands non-string values on as JSON; so do we.
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
