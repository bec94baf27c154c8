"""The options of ``mlsteps promote`` and ``mlsteps rollback``: one section, ``promote``,
read by both commands (a rollback must take the same lock and move the same aliases as the
promotions it undoes), and the resolved config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.core.config_file import resolve
from steps.core.errors import ConfigError
from steps.core.options import MLFLOW, MODEL, Option, Output, Section
from steps.core.runtime import Runtime
from steps.core.secret import Secret
from steps.core.text import redact_url
from steps.core.values import parse_duration, parse_pem_file, parse_version
from steps.locks import KINDS as LOCK_KINDS
from steps.promote import HELP
from steps.services.sagemaker import is_sagemaker_name

NO_CHAMPION = "none"  # the gate's word for "there was no champion" (steps/checks/verdict.py)
ANY_CHAMPION = "any"


def parse_expected(text: str) -> str:
    if text.lower() in (NO_CHAMPION, ANY_CHAMPION):
        return text.lower()
    try:
        return parse_version(text)
    except ValueError:
        raise ValueError("a version number, none (no champion) or any") from None


def parse_digest(text: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", text):
        raise ValueError("sha256:<64 lowercase hex digits>, the gate step's report-digest output")
    return text


NO_SYNC = "none"  # --sagemaker-model-package-group none: no SageMaker sync


def parse_package_group(text: str) -> str:
    # SageMaker's ModelPackageGroupName. "none" turns the sync off, over a group set in
    # mlsteps.yaml.
    if text.lower() == NO_SYNC:
        return NO_SYNC
    if not is_sagemaker_name(text):
        raise ValueError(
            "a SageMaker model package group name: up to 63 letters, digits and hyphens, "
            "starting and ending with a letter or digit; or none (no sync)"
        )
    return text


def parse_alias(text: str) -> str:
    # MLflow's own rule: letters, digits, _ and -; not "latest", not v<digits> (a version).
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", text) or re.fullmatch(r"(?i)latest|v\d+", text):
        raise ValueError(
            "an MLflow alias: letters, digits, _ and -, not 'latest' and not v<number>"
        )
    return text


SECTION = Section(
    "promote",
    HELP,
    (
        Option(
            name="version",
            parse=parse_version,
            metavar="N",
            help="The model version to promote (the candidate the gate judged), e.g. "
            "gate's `candidate-version` output. Required; not with rollback.",
        ),
        Option(
            name="alias",
            parse=parse_alias,
            default="champion",
            help="The alias that marks the model in production.",
        ),
        Option(
            name="previous-alias",
            parse=parse_alias,
            default="previous-champion",
            help="The alias that keeps the replaced champion, for `mlsteps rollback`.",
        ),
        Option(
            name="expected-champion",
            parse=parse_expected,
            metavar="N|none|any",
            help="The champion the move is conditional on (compare-and-set). If the alias"
            " points elsewhere when the lock is held, nothing moves and the step "
            "exits 1. Default for promote: the version the gate compared against "
            "(from its report, see --gate-report-digest); `none`: no champion may "
            "exist yet; `any`: move whatever the champion is (no protection against "
            "a concurrent promotion). rollback: optional, refuse if the champion is "
            "not this version.",
        ),
        Option(
            name="require-gate",
            kind="bool",
            default=True,
            metavar="true|false",
            help="Refuse a version the gate has not passed. Its report (given by "
            "--gate-report-digest) must say pass; exit 3 when the gate rejected it, "
            "exit 2 when there is no such report. Not with rollback.",
        ),
        Option(
            name="gate-report-digest",
            parse=parse_digest,
            metavar="sha256:HEX",
            help="The gate step's `report-digest` output, handed on by the pipeline. "
            "Required with --require-gate `true`: promote reads the gate's report "
            "from the version's run (mlsteps/gate/report.json), checks that it "
            "hashes to this digest and is about this version, and takes the verdict "
            "and the champion compared against from it. Tags are never trusted for "
            "the verdict: the training can write them. Not with rollback.",
        ),
        Option(
            name="require-approval",
            kind="bool",
            default=False,
            metavar="true|false",
            help="Refuse unless someone approved: --approved-by, or on GitHub Actions the"
            " run's approvals of a protected environment (read with `GITHUB_TOKEN`; "
            "the job needs `permissions: actions: read`). Jenkins asks with the "
            "`input` step. Not with rollback.",
        ),
        Option(
            name="approval-environment",
            face_help={
                "jenkins": "For mlsteps on GitHub Actions only (there, the job's environment "
                "whose approvals count); on Jenkins the approval is the `input` step's."
            },
            metavar="NAME",
            help="On GitHub Actions, the environment of the promote job (its "
            "`environment:`, whose required reviewers approve). Only approvals of "
            "this environment count for --require-approval, not those of another "
            "environment in the same run. Required there (the runner does not tell a"
            " job its environment). Not with rollback.",
        ),
        Option(
            name="approved-by",
            help="Who approved the promotion (Jenkins: the input step's submitter). "
            "Recorded on the version as `mlsteps.promote.approved-by`. Not with "
            "rollback.",
        ),
        Option(
            name="lock",
            kind="choice",
            choices=LOCK_KINDS,
            default="file",
            help="What serialises promotions of the model. `file` (flock; runs on one "
            "machine), `vault` (a KV v2 key written with check-and-set) or "
            "`dynamodb` (a conditional write).",
        ),
        Option(
            name="lock-path",
            metavar="PATH|MOUNT/KEY|TABLE",
            help="Where the lock is. `file`: the lock file (default: "
            "mlsteps/locks/MODEL.lock in the user's cache directory); `vault`: "
            "`MOUNT/PATH` of a KV v2 key, e.g. `secret/mlsteps/locks/MODEL`; "
            "`dynamodb`: the table (partition key `LockID`, a string; mlsteps does "
            "not create it).",
        ),
        Option(
            name="lock-ttl",
            parse=parse_duration,
            default=300.0,
            default_text="5m",
            metavar="DURATION",
            help="A lock older than this is stale and taken over, e.g. `5m`, with a "
            "warning naming its holder (it died). Longer than a promotion takes.",
        ),
        Option(
            name="lock-timeout",
            parse=parse_duration,
            default=120.0,
            default_text="2m",
            metavar="DURATION",
            help="How long to wait for a lock another promotion holds, e.g. `2m`, before "
            "exiting 1.",
        ),
        Option(
            name="vault-url",
            metavar="URL",
            env_fallbacks=("VAULT_ADDR",),
            help="Vault server of --lock `vault`, e.g. `https://vault.example:8200`.",
        ),
        Option(
            name="vault-namespace",
            env_fallbacks=("VAULT_NAMESPACE",),
            help="Vault namespace of --lock `vault`.",
        ),
        Option(
            name="vault-ca-cert",
            kind="path",
            parse=parse_pem_file,
            parse_takes_base=True,
            metavar="PATH",
            env_fallbacks=("VAULT_CACERT",),
            help="CA certificate (PEM file) of the Vault server's TLS.",
        ),
        Option(
            name="sagemaker-model-package-group",
            parse=parse_package_group,
            metavar="NAME",
            help="SageMaker model package group to sync the decision to: promote approves"
            " the version's model package and rejects the replaced champion's, "
            "rollback rejects the demoted version's and approves the restored one's "
            "(boto3: the usual AWS credentials and region, from the environment). A "
            "version without one (tag `mlsteps.sagemaker.model-package-arn`) is "
            "registered from its serving image (tag `mlsteps.image.tag`). Unset or "
            "`none`: SageMaker is not used (`none` also when mlsteps.yaml sets a "
            "group).",
        ),
        Option(
            name="vault-token",
            secret=True,
            cli=False,
            # On GitHub from the step's env: (an input's empty default would shadow it).
            faces=("jenkins",),
            face_help={
                "jenkins": "Secret text credential holding the Vault token of --lock `vault`."
            },
            env_fallbacks=("VAULT_TOKEN",),
            help="Vault token of --lock `vault` (e.g. the secrets step's login). Env only.",
        ),
        Option(
            name="github-token",
            secret=True,
            cli=False,
            faces=("jenkins",),
            face_help={
                "jenkins": "Secret text credential holding a GitHub token (approvals are read "
                "from GitHub only on GitHub Actions)."
            },
            env_fallbacks=("GITHUB_TOKEN",),
            help="Token that reads the run's approvals on GitHub Actions "
            "(--require-approval `true` without --approved-by; needs `permissions: "
            "actions: read`). Env only.",
        ),
    ),
)

OUTPUTS = (
    Output("champion-version", "The version the alias points at now."),
    Output(
        "previous-version",
        "promote: the champion this run replaced (empty when there was none); rollback: the "
        "demoted version.",
    ),
    Output(
        "decision",
        "`promoted`, `unchanged` (the version already was the champion) or `rolled-back`.",
    ),
    Output(
        "sagemaker-model-package-arn",
        "The ARN of the SageMaker model package this run approved (rollback: the restored "
        "version's; unchanged: the champion's); empty when not synced.",
    ),
)
DECISIONS = ("promoted", "unchanged", "rolled-back")
# The options each command takes (rollback has no candidate, gate or approval).
SHARED_OPTIONS = ("tracking-uri", "name")
LOCK_OPTIONS = (
    "alias", "previous-alias", "expected-champion", "lock", "lock-path", "lock-ttl",
    "lock-timeout", "vault-url", "vault-namespace", "vault-ca-cert",
)  # fmt: skip
SYNC_OPTIONS = ("sagemaker-model-package-group",)
PROMOTE_OPTIONS = (
    *SHARED_OPTIONS, "version", *LOCK_OPTIONS, "require-gate", "gate-report-digest",
    "require-approval", "approval-environment",
    "approved-by", *SYNC_OPTIONS,
)  # fmt: skip
ROLLBACK_OPTIONS = (*SHARED_OPTIONS, *LOCK_OPTIONS, *SYNC_OPTIONS)


@dataclass(frozen=True, kw_only=True)
class PromoteConfig:
    tracking_uri: str
    model_name: str
    version: str | None  # None for rollback
    alias: str
    previous_alias: str
    expected_champion: str | None  # a version, "none", "any", or None: from the gate's tag
    require_gate: bool
    gate_report_digest: str | None  # the gate step's report-digest output
    require_approval: bool
    approved_by: str | None
    approval_environment: str | None  # GitHub: the environment whose approvals count
    lock: str
    lock_path: str
    lock_ttl: float
    lock_timeout: float
    vault_url: str | None
    vault_namespace: str | None
    vault_ca_cert: str | None
    vault_token: Secret | None
    github_token: Secret | None
    sagemaker_model_package_group: str | None  # None: no SageMaker sync

    def __repr__(self) -> str:
        return f"PromoteConfig(model_name={self.model_name!r}, version={self.version!r})"


def default_lock_file(model: str, environ: Mapping[str, str]) -> str:
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip(".") or "model"
    return str(Path(cache) / "mlsteps" / "locks" / f"{name}.lock")


def load_config(runtime: Runtime, flags: Mapping[str, Any], *, rollback: bool) -> PromoteConfig:
    cfg = runtime.config_file()
    values = {k: v.value for k, v in resolve(SECTION, flags, cfg, runtime.environ).items()}
    tracking = {k: v.value for k, v in resolve(MLFLOW, flags, cfg, runtime.environ).items()}
    model = {k: v.value for k, v in resolve(MODEL, flags, cfg, runtime.environ).items()}
    command = "rollback" if rollback else "promote"
    name = model["name"]
    if not name:
        raise ConfigError(
            f"{command} needs the registered model: give --name (env MLSTEPS_MODEL_NAME, or "
            "model.name in mlsteps.yaml)."
        )
    uri = tracking["tracking-uri"]
    if not uri:
        raise ConfigError(
            f"{command} moves aliases in the MLflow model registry: give --tracking-uri (env "
            "MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI), e.g. http://127.0.0.1:5000."
        )
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"--tracking-uri {redact_url(uri)}: {command} talks to an MLflow tracking server "
            "over HTTP; give its http(s) URL (start one with `mlflow server`)."
        )
    version = None if rollback else values["version"]
    if not rollback and not version:
        raise ConfigError(
            "promote needs the version to promote: give --version N (env "
            "MLSTEPS_PROMOTE_VERSION), e.g. the model-version output of the package step."
        )
    lock, lock_path = values["lock"], values["lock-path"]
    if not lock_path and lock == "file":
        lock_path = default_lock_file(name, runtime.environ)
    elif not lock_path:
        example = "secret/mlsteps/locks/" + name if lock == "vault" else "mlsteps-locks"
        raise ConfigError(
            f"--lock {lock} needs --lock-path (env MLSTEPS_PROMOTE_LOCK_PATH): "
            + (
                f"MOUNT/PATH of a KV v2 key, e.g. {example}."
                if lock == "vault"
                else f"the DynamoDB table, e.g. {example} (partition key LockID, a string)."
            )
        )
    token = values["vault-token"]
    github_token = values["github-token"]
    group = values["sagemaker-model-package-group"]
    config = PromoteConfig(
        tracking_uri=uri.rstrip("/"),
        model_name=name,
        version=version,
        alias=values["alias"],
        previous_alias=values["previous-alias"],
        expected_champion=values["expected-champion"],
        require_gate=False if rollback else values["require-gate"],
        gate_report_digest=None if rollback else values["gate-report-digest"],
        require_approval=False if rollback else values["require-approval"],
        approved_by=None if rollback else values["approved-by"],
        approval_environment=None if rollback else values["approval-environment"],
        lock=lock,
        lock_path=lock_path,
        lock_ttl=values["lock-ttl"],
        lock_timeout=values["lock-timeout"],
        vault_url=(values["vault-url"] or "").rstrip("/") or None,
        vault_namespace=values["vault-namespace"],
        vault_ca_cert=values["vault-ca-cert"],
        vault_token=Secret(token) if token else None,
        github_token=Secret(github_token) if github_token else None,
        sagemaker_model_package_group=None if group == NO_SYNC else group,
    )
    _check(config, command)
    if config.require_gate and not config.gate_report_digest:
        raise ConfigError(
            "--require-gate true needs --gate-report-digest (env "
            "MLSTEPS_PROMOTE_GATE_REPORT_DIGEST): the gate step's report-digest output, handed "
            "from the gate to promote by the pipeline; promote checks the gate's report against "
            "it. Or --require-gate false with --expected-champion to promote without a gate."
        )
    if not config.gate_report_digest and config.expected_champion is None and not rollback:
        raise ConfigError(
            "--require-gate false without --gate-report-digest: there is no gate report to read "
            "the champion it compared against from. Give --expected-champion N (the champion "
            "you expect), none (there is none yet) or any."
        )
    if config.require_approval and not config.approved_by:
        _check_github_approval(config, runtime.environ)
    return config


def _check_github_approval(config: PromoteConfig, environ: Mapping[str, str]) -> None:
    on_github = environ.get("GITHUB_ACTIONS") == "true"
    if not on_github or not environ.get("GITHUB_RUN_ID") or not environ.get("GITHUB_REPOSITORY"):
        raise ConfigError(
            f"--require-approval true, but no approval is given for version {config.version}: "
            "give --approved-by NAME (env MLSTEPS_PROMOTE_APPROVED_BY; on Jenkins the submitter "
            "of an `input` step before this one), or on GitHub Actions run the job in an "
            "environment with required reviewers; or --require-approval false."
        )
    if config.github_token is None:
        raise ConfigError(
            "--require-approval true on GitHub Actions reads the run's approvals with a token: "
            "give the step `env: GITHUB_TOKEN: ${{ github.token }}` (and the job "
            "`permissions: actions: read`), or give --approved-by."
        )
    if not config.approval_environment:
        raise ConfigError(
            "--require-approval true on GitHub Actions counts the approvals of the promote "
            "job's environment only, and the runner does not say which it is: give "
            "--approval-environment NAME (action input approval-environment), the job's "
            "`environment:`, e.g. production. Approvals of other environments of the run do "
            "not count."
        )


def _check(config: PromoteConfig, command: str) -> None:
    if config.alias == config.previous_alias:
        raise ConfigError(
            f"--alias and --previous-alias are both '{config.alias}': the old champion would "
            "overwrite the new one. Give two different aliases."
        )
    if command == "rollback" and config.expected_champion in (NO_CHAMPION, ANY_CHAMPION):
        raise ConfigError(
            f"--expected-champion {config.expected_champion}: a rollback needs a champion to "
            "roll back; give its version, or leave the option out."
        )
    if config.lock == "vault":
        if not config.vault_url:
            raise ConfigError(
                "--lock vault needs the server: give --vault-url (env VAULT_ADDR or "
                "MLSTEPS_PROMOTE_VAULT_URL), e.g. https://vault.example:8200."
            )
        if not config.vault_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--vault-url {redact_url(config.vault_url)}: expected http(s)://HOST:PORT."
            )
        if config.vault_token is None:
            raise ConfigError(
                "--lock vault needs a Vault token in the environment: VAULT_TOKEN or "
                "MLSTEPS_PROMOTE_VAULT_TOKEN (the secrets step's login can provide one)."
            )
    if config.lock_ttl < 30:
        raise ConfigError(
            f"--lock-ttl {config.lock_ttl:g}s is too short: a holder stops moving aliases 5s "
            "before its lease ends. Give at least 30s (the default 5m suits most pipelines)."
        )
