"""The options of ``mlsteps deploy`` (section ``deploy``), the traffic schedule they give and
the resolved config.
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
from steps.core.text import redact_url
from steps.core.values import parse_duration, parse_version
from steps.deploy import HELP
from steps.services.images.build import parse_image_reference
from steps.services.sagemaker import is_sagemaker_name

STRATEGIES = ("canary", "linear", "blue-green", "shadow")
ON_INCONCLUSIVE = ("rollback", "hold", "promote")
TARGET_NAMES = ("docker", "sagemaker")
# Each strategy's traffic steps (the candidate's percent) when --steps is not given. The last
# step of a rollout is 100 (the switch, after which there is no champion traffic to judge
# against); shadow and blue-green judge a mirrored copy of every request at weight 0 first.
DEFAULT_STEPS = {
    "canary": (5, 25, 50, 100),
    "linear": (10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
    "blue-green": (0, 100),
    "shadow": (0,),
}


# The image references the docker target runs: name[:tag][@sha256:digest], registry
# host[:port]/ first; narrower than parse_image_reference (no IPv6 host, sha256 digests only),
# and nothing that quotes, separates or spaces.
_DOCKER_IMAGE = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?/)?[A-Za-z0-9][A-Za-z0-9._/-]*"
    r"(:[A-Za-z0-9._-]{1,128})?(@sha256:[0-9a-f]{64})?"
)


def check_image(image: str, what: str = "image") -> str:
    """An image reference the docker target can run, or ValueError naming ``what``."""
    if not isinstance(image, str) or len(image) > 512 or not _DOCKER_IMAGE.fullmatch(image):
        raise ValueError(
            f"{what} {image!r}: not an image reference (name[:tag][@sha256:digest], e.g. "
            "127.0.0.1:5000/iris:model-1a2b)"
        )
    return image


def parse_steps(text: str) -> tuple[int, ...]:
    form = (
        "a comma-separated list of increasing percentages of traffic on the candidate, each "
        "from 1 to 100 and ending with 100, e.g. 5,25,50,100"
    )
    parts = [p.strip().rstrip("%") for p in text.split(",")]
    if not parts or not all(re.fullmatch(r"[0-9]{1,3}", p) for p in parts):
        raise ValueError(form)
    weights = tuple(int(p) for p in parts)
    if any(not 1 <= w <= 100 for w in weights) or list(weights) != sorted(set(weights)):
        raise ValueError(form)
    if weights[-1] != 100:
        raise ValueError(form)
    if len(weights) == 1:  # 100 alone: all traffic at once, nothing ever judged
        raise ValueError(form + " (at least one step below 100, where the candidate is judged)")
    return weights


def parse_endpoint(text: str) -> str:
    # Names a container, an nginx file and a SageMaker endpoint: SageMaker's rule is the
    # narrowest of them.
    if not is_sagemaker_name(text):
        raise ValueError(
            "an endpoint name: up to 63 letters, digits and hyphens, starting and ending with "
            "a letter or digit"
        )
    return text


def parse_listen(text: str) -> int:
    match = re.fullmatch(r"(?:(?:127\.0\.0\.1|localhost):)?([0-9]{1,5})", text.strip())
    if not match or not 1024 <= int(match.group(1)) <= 65535:
        raise ValueError(
            "a port from 1024 to 65535 on this machine's loopback, e.g. 8800 or "
            "127.0.0.1:8800 (the proxy runs unprivileged; put a load balancer in front of it "
            "to take requests from other machines)"
        )
    return int(match.group(1))


def _fraction(text: str, *, zero: bool) -> float:
    form = f"a number from 0 to 1, e.g. {'0 or ' if zero else ''}0.05 (or a percentage such as 5%)"
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(form) from None
    if not (0 <= value < 1 if zero else 0 < value < 1):
        raise ValueError(form)
    return value


def parse_fraction(text: str) -> float:
    return _fraction(text, zero=False)


def parse_tolerance_fraction(text: str) -> float:
    return _fraction(text, zero=True)


def parse_ratio(text: str) -> float:
    form = "a rate ratio above 1, e.g. 1.5 (the candidate's error rate may be 1.5x the champion's)"
    try:
        value = float(text.rstrip("xX"))
    except ValueError:
        raise ValueError(form) from None
    if not 1 < value <= 100:
        raise ValueError(form)
    return value


def parse_tolerance(text: str) -> float:
    form = "a number >= 0, e.g. 0 (predictions must be equal) or 0.001"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(form) from None
    if not 0 <= value < 1e12:
        raise ValueError(form)
    return value


SECTION = Section(
    "deploy",
    HELP,
    (
        Option(
            name="image",
            parse=parse_image_reference,
            metavar="IMAGE",
            help="The candidate's serving image, e.g. package's `image-ref` output "
            "(`REGISTRY/NAME@sha256:…`). Required.",
        ),
        Option(
            name="champion-image",
            parse=parse_image_reference,
            metavar="IMAGE",
            help="The image the endpoint starts with when nothing serves yet (the first "
            "deploy); the candidate is then rolled out beside it. An endpoint already serving "
            "keeps its champion: the last rollout's candidate. With neither, the candidate "
            "becomes the endpoint's first champion once it answers (nothing to compare it "
            "with; the report says so).",
        ),
        Option(
            name="strategy",
            kind="choice",
            choices=STRATEGIES,
            default="canary",
            help="`canary`: the candidate takes --steps of the traffic, judged at each; "
            "`linear`: the same in equal steps (10,20,…,100); `blue-green`: the candidate "
            "gets a mirrored copy of every request (clients see only the champion's answers), "
            "then all traffic at once; `shadow`: mirrored only, compared, never served, then "
            "removed.",
        ),
        Option(
            name="steps",
            parse=parse_steps,
            metavar="PERCENT,…",
            help="The candidate's share of traffic at each step, ending with 100, e.g. "
            "`5,25,50,100` (canary's default; linear's: 10,20,…,100). Each step but the last "
            "bakes and is judged.",
        ),
        Option(
            name="target",
            kind="choice",
            choices=TARGET_NAMES,
            default="docker",
            help="Where the models serve: `docker` (containers on this machine's Docker "
            "Engine behind nginx; the endpoint stays up between deploys) or `sagemaker` (one "
            "endpoint, a production variant each; boto3 credentials from the environment).",
        ),
        Option(
            name="endpoint",
            parse=parse_endpoint,
            metavar="NAME",
            help="The endpoint's name (default: --name, the registered model). The next "
            "deploy to the same endpoint finds its champion serving.",
        ),
        Option(
            name="listen",
            parse=parse_listen,
            default=8800,
            default_text="127.0.0.1:8800",
            metavar="[127.0.0.1:]PORT",
            help="docker: the port on this machine's loopback where the proxy (nginx) takes "
            "requests. An endpoint already up keeps the port it was made with.",
        ),
        Option(
            name="state-dir",
            kind="path",
            metavar="PATH",
            help="docker: where the endpoint's proxy config, logs and data capture live, "
            "and the rollout's state (default: mlsteps/endpoints/ENDPOINT in the user's "
            "cache directory). A re-run with the same arguments resumes from it.",
        ),
        Option(
            name="sagemaker-role-arn",
            metavar="ARN",
            help="sagemaker: the execution role SageMaker models made from --image (and "
            "--champion-image) run as; it needs read access to the image's ECR repository. "
            "Not needed when the images are existing SageMaker model names.",
        ),
        Option(
            name="sagemaker-instance-type",
            default="ml.m5.large",
            metavar="TYPE",
            help="sagemaker: the instance type of a new endpoint's champion (a candidate runs "
            "on what the champion runs on).",
        ),
        Option(
            name="sagemaker-instance-count",
            kind="int",
            default=1,
            limits=(1, 100),
            metavar="N",
            help="sagemaker: the instance count of a new endpoint's champion.",
        ),
        Option(
            name="min-bake",
            parse=parse_duration,
            default=60.0,
            default_text="1m",
            metavar="DURATION",
            help="The least time each step runs, however good the numbers look: slow and "
            "load-dependent failures need time to show.",
        ),
        Option(
            name="min-requests",
            kind="int",
            default=100,
            limits=(0, 10**9),
            metavar="N",
            help="The least number of requests the candidate answers in each step before "
            "it may go on.",
        ),
        Option(
            name="max-bake",
            parse=parse_duration,
            default=600.0,
            default_text="10m",
            metavar="DURATION",
            help="The most time a step runs before --on-inconclusive decides, when the "
            "judge has neither found harm nor shown the candidate within its margins.",
        ),
        Option(
            name="look-every",
            parse=parse_duration,
            default=10.0,
            default_text="10s",
            metavar="DURATION",
            help="How often the judge looks. Its tests stay valid however often it looks.",
        ),
        Option(
            name="on-inconclusive",
            kind="choice",
            choices=ON_INCONCLUSIVE,
            default="rollback",
            help="At --max-bake with no decision: `rollback` (traffic back on the champion, "
            "exit 3), `hold` (the candidate stays at its share, exit 3; a re-run resumes "
            "the bake) or `promote` (go on; the report says which regressions were not ruled "
            "out). Never a silent promotion.",
        ),
        Option(
            name="retry",
            kind="bool",
            default=False,
            metavar="true|false",
            help="Roll the candidate out again although an earlier deploy with the same "
            "arguments rolled it back (or passed its shadow). Without it such a deploy reports "
            "the recorded decision and moves nothing, so a re-run job never exposes clients "
            "to a candidate already judged harmful.",
        ),
        Option(
            name="alpha",
            parse=parse_fraction,
            default=0.05,
            metavar="P",
            help="The judge's error budget: the chance of rolling back a candidate that is "
            "no worse, or of passing one that is worse than its margins, however often it "
            "looks.",
        ),
        Option(
            name="error-margin",
            parse=parse_ratio,
            default=1.5,
            metavar="RATIO",
            help="Errors (5xx, timeouts, refused connections; and apart from them 4xx answers) "
            "the candidate may make, as a multiple of the champion's rate, and still be shown "
            "safe.",
        ),
        Option(
            name="error-floor",
            parse=parse_fraction,
            default=0.01,
            metavar="FRACTION",
            help="When errors are too rare to compare (none at all is the usual case), the "
            "candidate is shown safe by its own error rate staying below this, e.g. `1%`. "
            "Harm is still judged by comparing with the champion.",
        ),
        Option(
            name="latency-margin",
            parse=parse_fraction,
            default=0.05,
            metavar="FRACTION",
            help="How much slower (geometric mean) the candidate may be and still be shown "
            "safe, e.g. `0.05` or `5%`.",
        ),
        Option(
            name="latency-tolerance",
            parse=parse_tolerance_fraction,
            default=0.0,
            metavar="FRACTION",
            help="How much slower (geometric mean) the candidate must be shown to be before "
            "it is rolled back: 0 rolls back any slowdown the data shows; raise it (e.g. "
            "`10%`) where two containers of the same model differ (cold caches, busy hosts). "
            "Below --latency-margin.",
        ),
        Option(
            name="disagreement-tolerance",
            parse=parse_fraction,
            default=0.01,
            metavar="FRACTION",
            help="shadow and blue-green: the share of mirrored requests the candidate may "
            "answer differently from the champion.",
        ),
        Option(
            name="prediction-tolerance",
            parse=parse_tolerance,
            default=0.0,
            metavar="NUMBER",
            help="Two numeric predictions within this absolute difference agree.",
        ),
        Option(
            name="version",
            parse=parse_version,
            metavar="N",
            help="The candidate's version in the MLflow registry (gate's `candidate-version`"
            " output). With --tracking-uri and --name, the report is logged to its run and the "
            "decision tagged on the run and the version (`mlsteps.deploy.decision`).",
        ),
        Option(
            name="report-dir",
            kind="path",
            default="mlsteps-deploy",
            metavar="PATH",
            help="Where report.md, report.json and a PNG per metric are written.",
        ),
    ),
)

OUTPUTS = (
    Output(
        "decision",
        "`rolled-out` (the candidate serves all traffic), `rolled-back`, `held` (left at "
        "its share by --on-inconclusive hold) or `passed` (shadow: judged, not served).",
    ),
    Output("report", "Path of the markdown report (report.json and the PNGs are beside it)."),
    Output("endpoint", "Where clients send requests (the proxy's URL, the SageMaker endpoint)."),
    Output("variant-weights", "The traffic each variant serves now, e.g. `champion=100`."),
)
DECISIONS = ("rolled-out", "rolled-back", "held", "passed")


@dataclass(frozen=True)
class Step:
    """One step of the schedule: the candidate's share, and whether its answers reach
    clients (mirror: a copy of every request, the champion's answer served)."""

    weight: int
    mirror: bool

    @property
    def judged(self) -> bool:
        """The switch to 100% ends a rollout: no champion traffic is left to compare with."""
        return self.weight < 100


@dataclass(frozen=True, kw_only=True)
class DeployConfig:
    image: str
    champion_image: str | None
    strategy: str
    schedule: tuple[Step, ...]
    target: str
    endpoint: str
    listen: int
    state_dir: str
    min_bake: float
    min_requests: int
    max_bake: float
    look_every: float
    on_inconclusive: str
    retry: bool
    alpha: float
    error_margin: float
    error_floor: float
    latency_margin: float
    latency_tolerance: float
    disagreement_tolerance: float
    prediction_tolerance: float
    report_dir: str
    sagemaker_role_arn: str | None
    sagemaker_instance_type: str
    sagemaker_instance_count: int
    # The candidate in MLflow (--tracking-uri, --name, --version): where the report is logged.
    tracking_uri: str | None
    model_name: str | None
    version: str | None

    @property
    def mirrors(self) -> bool:
        return any(step.mirror for step in self.schedule)


def schedule_of(strategy: str, steps: tuple[int, ...] | None) -> tuple[Step, ...]:
    if strategy in ("shadow", "blue-green"):
        # One mirrored bake; blue-green then switches (its --steps may only be 100).
        bake = (Step(0, mirror=True),)
        return bake if strategy == "shadow" else (*bake, Step(100, mirror=False))
    weights = steps or DEFAULT_STEPS[strategy]
    return tuple(Step(w, mirror=False) for w in weights)


def default_state_dir(endpoint: str, environ: Mapping[str, str]) -> str:
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return str(Path(cache) / "mlsteps" / "endpoints" / endpoint)


def load_config(runtime: Runtime, flags: Mapping[str, Any]) -> DeployConfig:
    cfg = runtime.config_file()
    values = {k: v.value for k, v in resolve(SECTION, flags, cfg, runtime.environ).items()}
    model = {k: v.value for k, v in resolve(MODEL, flags, cfg, runtime.environ).items()}
    tracking = {k: v.value for k, v in resolve(MLFLOW, flags, cfg, runtime.environ).items()}
    image = values["image"]
    if not image:
        raise ConfigError(
            "deploy needs the candidate's serving image: give --image IMAGE (env "
            "MLSTEPS_DEPLOY_IMAGE), e.g. the package step's image-ref output."
        )
    endpoint = values["endpoint"]
    if not endpoint and model["name"]:
        try:
            endpoint = parse_endpoint(model["name"])
        except ValueError as exc:
            raise ConfigError(
                f"--name {model['name']!r} cannot name the endpoint ({exc}): give --endpoint "
                "NAME (env MLSTEPS_DEPLOY_ENDPOINT)."
            ) from None
    if not endpoint:
        raise ConfigError(
            "deploy needs the endpoint's name: give --endpoint NAME (env "
            "MLSTEPS_DEPLOY_ENDPOINT) or --name, the registered model."
        )
    strategy, steps = values["strategy"], values["steps"]
    if steps and strategy in ("shadow", "blue-green"):
        raise ConfigError(
            f"--steps {','.join(map(str, steps))} with --strategy {strategy}: {strategy} has "
            "no traffic steps (it judges a mirrored copy of the traffic). Leave --steps out, or "
            "use --strategy canary."
        )
    if values["target"] == "docker":
        _check_docker_images(values)
    if values["version"] and not model["name"]:
        raise ConfigError(
            f"--version {values['version']} needs the registered model: give --name (env "
            "MLSTEPS_MODEL_NAME)."
        )
    if values["latency-tolerance"] >= values["latency-margin"]:
        raise ConfigError(
            f"--latency-tolerance {values['latency-tolerance']:g} is not below --latency-margin "
            f"{values['latency-margin']:g}: a candidate could be harmful and safe at once. Give "
            "a tolerance (rolled back above it) below the margin (shown safe below it)."
        )
    if values["min-bake"] > values["max-bake"]:
        raise ConfigError(
            "--min-bake is longer than --max-bake: every step would end at --max-bake "
            "undecided. Give a --max-bake of at least --min-bake."
        )
    if values["look-every"] > values["max-bake"]:
        raise ConfigError(
            "--look-every is longer than --max-bake: the judge would not look once in a step. "
            "Give a shorter --look-every."
        )
    return DeployConfig(
        image=image,
        champion_image=values["champion-image"],
        strategy=strategy,
        schedule=schedule_of(strategy, steps),
        target=values["target"],
        endpoint=endpoint,
        listen=values["listen"],
        state_dir=values["state-dir"] or default_state_dir(endpoint, runtime.environ),
        min_bake=values["min-bake"],
        min_requests=values["min-requests"],
        max_bake=values["max-bake"],
        look_every=values["look-every"],
        on_inconclusive=values["on-inconclusive"],
        retry=values["retry"],
        alpha=values["alpha"],
        error_margin=values["error-margin"],
        error_floor=values["error-floor"],
        latency_margin=values["latency-margin"],
        latency_tolerance=values["latency-tolerance"],
        disagreement_tolerance=values["disagreement-tolerance"],
        prediction_tolerance=values["prediction-tolerance"],
        report_dir=values["report-dir"],
        sagemaker_role_arn=values["sagemaker-role-arn"],
        sagemaker_instance_type=values["sagemaker-instance-type"],
        sagemaker_instance_count=values["sagemaker-instance-count"],
        tracking_uri=_tracking_uri(tracking["tracking-uri"], values["version"]),
        model_name=model["name"],
        version=values["version"],
    )


def _check_docker_images(values: Mapping[str, Any]) -> None:
    """The docker target names containers and labels from the images: it takes a narrower
    reference than the option's parser (no IPv6 host, sha256 digests only). Refused here,
    before anything starts, rather than by the target mid-rollout."""
    for option in ("image", "champion-image"):
        if values[option]:
            try:
                check_image(values[option], f"--{option}")
            except ValueError as exc:
                env = "MLSTEPS_DEPLOY_" + option.upper().replace("-", "_")
                raise ConfigError(
                    f"{exc}: the docker target cannot run it. Give --{option} (env {env}) "
                    "with a registry host name or 127.0.0.1:PORT and a sha256 digest if any."
                ) from None


def _tracking_uri(uri: str | None, version: str | None) -> str | None:
    if version is None:
        return None
    if not uri:
        raise ConfigError(
            f"--version {version} logs the report to the version's run in MLflow: give "
            "--tracking-uri (env MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI), or leave "
            "--version out."
        )
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"--tracking-uri {redact_url(uri)}: deploy talks to an MLflow tracking server over "
            "HTTP; give its http(s) URL."
        )
    return uri.rstrip("/")
