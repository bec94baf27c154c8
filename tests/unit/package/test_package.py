"""package's pure parts: requirements for the image, the dependencies image's cache key, the
model facts read from a saved model's files, option checks and ECR hosts. No services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps.core.errors import ConfigError
from steps.core.runtime import Runtime
from steps.package.options import load_config, parse_registry
from steps.services.images.build import DepsBuild, serving_requirements
from steps.services.images.model_facts import ModelFacts, read_facts
from steps.services.images.push import ecr_region
from steps.services.mlflow.model_source import Artifacts, resolve


def facts(*requirements: str, mlflow_version: str = "3.17.2") -> ModelFacts:
    return ModelFacts(
        python_version="3.11.7",
        requirements=requirements,
        requirements_source="requirements.txt",
        mlflow_version=mlflow_version,
        flavors=("python_function", "sklearn"),
        loader_module="mlflow.sklearn",
        serving_example="serving_input_example.json",
        input_example="input_example.json",
        created="2026-11-23 10:00:00.0",
        model_uuid="b1d809572e4e48048aef21549265e132",
    )


@pytest.mark.parametrize(
    ("given", "expected_mlflow"),
    [
        (("mlflow==3.17.2", "scikit-learn==1.9.1"), "mlflow-skinny==3.17.2"),
        (("mlflow[extras]>=3.1,<4",), "mlflow-skinny[extras]>=3.1,<4"),
        (("mlflow ; python_version >= '3.10'",), "mlflow-skinny ; python_version >= '3.10'"),
        (("mlflow-skinny==3.17.2",), "mlflow-skinny==3.17.2"),
        (("scikit-learn",), "mlflow-skinny==3.17.2"),  # none listed: the model's own version
    ],
)
def test_mlflow_becomes_mlflow_skinny_at_the_same_version(
    given: tuple[str, ...], expected_mlflow: str
) -> None:
    lines = serving_requirements(facts(*given))
    assert [line for line in lines if line.startswith("mlflow")] == [expected_mlflow]
    assert sum(line.startswith("uvicorn") for line in lines) == 1


@pytest.mark.parametrize(
    ("given", "added"),
    [
        # A model logged from code (or a PythonModel without an input example): MLflow names
        # mlflow and cloudpickle only, and mlflow.pyfunc imports numpy and pandas.
        (("mlflow==3.17.2", "cloudpickle==3.1.3"), ["numpy", "pandas"]),
        # The model's own pins stand, whatever the spelling (pip normalizes names).
        (("mlflow==3.17.2", "Pandas==2.2.3", "numpy>=1.26,<2"), []),
        (("mlflow==3.17.2", "pandas[performance]==2.2.3"), ["numpy"]),
    ],
)
def test_the_serving_runtime_always_has_numpy_and_pandas(
    given: tuple[str, ...], added: list[str]
) -> None:
    lines = serving_requirements(facts(*given))
    assert lines[: len(given)] == [g.replace("mlflow==", "mlflow-skinny==") for g in given]
    assert [line for line in lines[len(given) :] if not line.startswith("uvicorn")] == added


def test_system_packages_reach_the_build_as_data_and_change_the_cache_key() -> None:
    plain = DepsBuild(base_image="python:3.11-slim", requirements=("lightgbm==4.7.0",))
    extra = DepsBuild(
        base_image="python:3.11-slim",
        requirements=("lightgbm==4.7.0",),
        system_packages=("libgomp1", "fonts-dejavu-core=2.37-6"),
    )
    assert plain.cache_key() != extra.cache_key()
    assert plain.dockerfile() == extra.dockerfile()  # the names are in a file, not the RUN line
    files = extra.files()
    assert json.loads(files["system-packages.json"]) == ["libgomp1", "fonts-dejavu-core=2.37-6"]
    assert files["system_libraries.py"].startswith(b'"""The system libraries')
    text = extra.dockerfile()
    # The libraries are installed after the venv is in, before the imports that would need them.
    assert (
        text.index("RUN python3 -I /opt/mlsteps/install_requirements.py")
        < text.index("system_libraries.py /opt/venv")
        < text.index("importlib")
    )


def test_a_package_named_like_mlflow_is_left_alone() -> None:
    lines = serving_requirements(facts("mlflowx==1.0", "mlflow-tracing==3.1"))
    assert "mlflowx==1.0" in lines and "mlflow-tracing==3.1" in lines


def test_cache_key_follows_every_input_of_the_dependencies_image() -> None:
    base = DepsBuild(base_image="python:3.11-slim", requirements=("numpy==2.4.6",))
    same = DepsBuild(base_image="python:3.11-slim", requirements=("numpy==2.4.6",))
    assert base.cache_key() == same.cache_key() and len(base.cache_key()) == 20
    changed = [
        DepsBuild(base_image="python:3.12-slim", requirements=("numpy==2.4.6",)),
        DepsBuild(base_image="python:3.11-slim", requirements=("numpy==2.4.5",)),
        DepsBuild(base_image="python:3.11-slim", requirements=("numpy==2.4.6",), ca_bundle=b"x"),
        DepsBuild(
            base_image="python:3.11-slim",
            requirements=("numpy==2.4.6",),
            pip_index_url="https://mirror.example/simple",
        ),
        DepsBuild(
            base_image="python:3.11-slim", requirements=("numpy==2.4.6",), platform="linux/arm64"
        ),
        DepsBuild(
            base_image="python:3.11-slim", requirements=("numpy==2.4.6",), build_args=("A=1",)
        ),
    ]
    keys = {d.cache_key() for d in changed}
    assert len(keys) == len(changed) and base.cache_key() not in keys


def test_dependencies_dockerfile_installs_into_a_venv_as_root_and_serves_as_a_user() -> None:
    text = DepsBuild(
        base_image="python:3.11-slim",
        requirements=("numpy",),
        pip_extra_index_urls=("https://extra.example/simple",),
        ca_bundle=b"pem",
        warm_modules=("mlflow.sklearn",),
    ).dockerfile()
    assert text.index("FROM python:3.11-slim\n") < text.index("RUN python3 -I")
    assert text.index("USER 10001:10001") > text.index("RUN python3 -I")
    assert 'CMD ["serve"]' in text and "HEALTHCHECK" in text and "EXPOSE 8080" in text


def test_the_model_loader_and_the_index_urls_are_never_bare_shell_words() -> None:
    """Beside the checks that refuse them (below): were a hostile value to get this far, the
    module name and the index URLs are data in JSON files, never words of the Dockerfile."""
    loader, url = "$(touch /tmp/pwned)", "https://x.example/simple;touch /tmp/pwned"
    build = DepsBuild(
        base_image="python:3.11-slim",
        requirements=("numpy",),
        pip_index_url=url,
        warm_modules=(loader,),
    )
    text = build.dockerfile()
    assert "pwned" not in text and url not in text
    assert json.loads(build.files()["install-settings.json"])["index_url"] == url
    modules = json.loads(build.files()["warm-modules.json"])
    assert modules == ["mlflow.pyfunc.scoring_server", "uvicorn", loader]
    changed = DepsBuild(base_image="python:3.11-slim", requirements=("numpy",), pip_index_url=url)
    assert changed.cache_key() != build.cache_key()  # the loader is in the key through the file


@pytest.mark.parametrize(
    "good",
    ["python:3.11-slim", "ghcr.io/org/image:1.0", "127.0.0.1:5000/a/b_c__d-e:x",
     "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04", "img@sha256:" + "a" * 64,
     "[::1]:5000/img"],
)  # fmt: skip
def test_image_references(good: str) -> None:
    from steps.services.images.build import parse_image_reference

    assert parse_image_reference(good) == good


@pytest.mark.parametrize(
    "bad",
    ["python:3.11-slim\nRUN touch /tmp/pwned", "python:3.11 AS x", "${BASE}", "Python:3.11",
     "python:3.11-slim\r", "img:tag;id", "a" * 256, "python:-slim", ""],
)  # fmt: skip
def test_bad_image_references(bad: str) -> None:
    from steps.services.images.build import parse_image_reference

    with pytest.raises(ValueError, match="an image reference"):
        parse_image_reference(bad)


def _save(tmp_path: Path, files: dict[str, str]) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    for name, text in files.items():
        (model / name).write_text(text)
    return model


MLMODEL = """\
flavors:
  python_function:
    env: {conda: conda.yaml, virtualenv: python_env.yaml}
    loader_module: mlflow.sklearn
    python_version: 3.11.7
  sklearn: {serialization_format: skops}
mlflow_version: 3.17.2
model_uuid: 0123456789ab4cdef0123456789abcdef
saved_input_example_info: {artifact_path: input_example.json,
  serving_input_path: serving_input_example.json, type: dataframe}
utc_time_created: '2026-11-23 10:00:00.000000'
"""


def test_facts_from_requirements_txt_and_python_env(tmp_path: Path) -> None:
    model = _save(
        tmp_path,
        {
            "MLmodel": MLMODEL,
            "requirements.txt": "# pinned\nmlflow==3.17.2\nscikit-learn==1.9.1  # trees\n\n",
            "python_env.yaml": "python: 3.11.9\ndependencies:\n- -r requirements.txt\n",
        },
    )
    got = read_facts(resolve(str(model), None), Artifacts(None))
    assert got.requirements == ("mlflow==3.17.2", "scikit-learn==1.9.1")
    assert got.python_version == "3.11.9" and got.python_minor == "3.11"
    assert got.loader_module == "mlflow.sklearn" and got.flavors == ("python_function", "sklearn")
    assert got.serving_example == "serving_input_example.json"


def test_facts_fall_back_to_conda_yaml(tmp_path: Path) -> None:
    model = _save(
        tmp_path,
        {
            "MLmodel": MLMODEL,
            "conda.yaml": "dependencies:\n- python=3.10.4\n- pip:\n  - mlflow==2.16\n  - torch\n",
        },
    )
    got = read_facts(resolve(str(model), None), Artifacts(None))
    assert got.requirements == ("mlflow==2.16", "torch")
    assert got.requirements_source == "conda.yaml"


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (
            {"python_env.yaml": 'python: "3.11-slim\\nRUN touch /tmp/pwned"\n'},
            "its python_env.yaml gives python: '3.11-slim\\\\nRUN",
        ),
        (
            {"MLmodel": MLMODEL.replace("3.11.7", "'3.11; id'")},
            "its MLmodel gives flavors.python_function.python_version: '3.11; id'",
        ),
        (
            {"MLmodel": MLMODEL.replace("mlflow.sklearn", "'$(touch /tmp/pwned)'")},
            "flavors.python_function.loader_module: '\\$\\(touch /tmp/pwned\\)', which is not a "
            "dotted Python module name",
        ),
        (
            {"MLmodel": MLMODEL.replace("serving_input_example.json", "../../.docker/c.json")},
            "saved_input_example_info.serving_input_path: '../../.docker/c.json', which is not "
            "a path inside",
        ),
        (
            {"requirements.txt": "numpy\n--index-url https://evil.example/simple\n"},
            "its requirements.txt has the line '--index-url https://evil.example/simple', a "
            "pip option",
        ),
        (
            {"MLmodel": MLMODEL.replace("0123456789ab4cdef0123456789abcdef", "'x y'")},
            "its MLmodel gives model_uuid: 'x y', which is not a model uuid",
        ),
        (
            # Pinned into requirements.txt when the requirements do not name mlflow.
            {
                "MLmodel": MLMODEL.replace(
                    "mlflow_version: ", 'mlflow_version: "2.16.0\\n--index-url http://e"\nx: '
                ),
                "requirements.txt": "numpy\n",
            },
            "its MLmodel gives mlflow_version: '2.16.0\\\\n--index-url http://e', which is not "
            "a version",
        ),
        (
            # An option after a specifier: uv's and pip's parsers read the rest of the line.
            {"requirements.txt": "numpy --index-url https://evil.example/simple\n"},
            "the line 'numpy --index-url https://evil.example/simple', a pip option",
        ),
        (
            {"requirements.txt": "numpy\n--index-strategy=unsafe-first-match\n"},
            "the line '--index-strategy=unsafe-first-match', a pip option",
        ),
        (
            {"requirements.txt": "-c constraints.txt\n"},
            "'-c constraints.txt', a pip option",
        ),
        (
            # YAML strings may hold a newline: one entry, two lines of requirements.txt.
            {
                "MLmodel": MLMODEL.replace(", virtualenv: python_env.yaml", ""),
                "conda.yaml": 'dependencies:\n- pip:\n  - "numpy\\n--index-url http://e"\n',
            },
            "its conda.yaml has the requirement 'numpy\\\\n--index-url http://e', which holds a "
            "control",
        ),
    ],
)
def test_model_files_with_values_that_would_reach_the_build_are_refused(
    tmp_path: Path, files: dict[str, str], says: str
) -> None:
    model = _save(tmp_path, {"MLmodel": MLMODEL, "python_env.yaml": "python: 3.11.9\n", **files})
    with pytest.raises(ConfigError, match=says) as caught:
        read_facts(resolve(str(model), None), Artifacts(None))
    assert "save the model again with MLflow, or correct the file" in caught.value.message


def test_a_link_out_of_a_local_model_directory_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "config.json"
    secret.write_text('{"auths": {}}')
    model = _save(tmp_path, {"MLmodel": MLMODEL})
    (model / "serving_input_example.json").symlink_to(secret)
    (model / "inside.json").symlink_to(model / "MLmodel")  # a link inside is copied
    dest = tmp_path / "copy"
    dest.mkdir()
    with pytest.raises(ConfigError, match="serving_input_example.json is a link to .*outside"):
        Artifacts(None).download(str(model), dest)
    assert list(dest.iterdir()) == []
    (model / "serving_input_example.json").unlink()
    Artifacts(None).download(str(model), dest)
    assert (dest / "inside.json").read_text() == MLMODEL


def test_a_link_to_this_users_files_is_never_read_as_the_models(tmp_path: Path) -> None:
    """A training's /output (or a repository) holds the model's directory: a requirements.txt
    that links to the Docker login would put it in the plan (the dry run prints the
    requirements) and the build's error output. The dry run refuses it, showing none of it."""
    import subprocess
    import sys

    login = tmp_path / "config.json"
    login.write_text('{"auths": {"r.example": {"auth": "dXNlcjpzM2NyZXQtbG9naW4="}}}\n')
    model = _save(tmp_path, {"MLmodel": MLMODEL, "python_env.yaml": "python: 3.11.9\n"})
    (model / "requirements.txt").symlink_to(login)
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    (sub / "python_env.yaml").write_text("python: 3.11.9\n")
    done = subprocess.run(
        [sys.executable, "-m", "steps", "--json", "--dry-run", "package", "--model-uri", str(model),
         "--repository", "x"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"the model's file requirements.txt is a link to {login}, outside" in done.stderr
    assert "dXNlcjpzM2NyZXQtbG9naW4=" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    # A directory on the way that is a link counts alike.
    (model / "requirements.txt").unlink()
    (model / "env").symlink_to(sub)
    with pytest.raises(ConfigError, match="env/python_env.yaml is a link to .*elsewhere"):
        Artifacts(None).read(str(model), "env/python_env.yaml")


def test_a_pipe_in_a_model_directory_is_refused_not_read_forever(tmp_path: Path) -> None:
    import os

    model = _save(tmp_path, {"MLmodel": MLMODEL})
    os.mkfifo(model / "weights.bin")
    dest = tmp_path / "copy"
    dest.mkdir()
    with pytest.raises(ConfigError, match="weights.bin is a named pipe, not a regular file"):
        Artifacts(None).download(str(model), dest)
    assert list(dest.iterdir()) == []
    os.mkfifo(model / "requirements.txt")  # read before anything is copied
    with pytest.raises(ConfigError, match="requirements.txt is a named pipe"):
        read_facts(resolve(str(model), None), Artifacts(None))


def test_yaml_bombs_in_the_models_files_are_refused_at_once(tmp_path: Path) -> None:
    """Nine lines of aliases (9**9 values once expanded, which str() of the field would build)
    and 5,000-deep nesting: both exit 2 in well under a second. Aliases as MLflow writes them
    (an object met twice) still load."""
    import time

    laughs = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    bomb = MLMODEL.replace("python_version: 3.11.7", "python_version: *a8")
    deep = MLMODEL.replace("python_version: 3.11.7", "python_version: " + "[" * 5000)
    shared = MLMODEL.replace(
        "env: {conda: conda.yaml, virtualenv: python_env.yaml}",
        "env: &e {conda: conda.yaml, virtualenv: python_env.yaml}\n    other: *e",
    )
    for text, says in (
        (laughs + bomb, "its MLmodel or environment files cannot be read"),
        (deep, "its MLmodel or environment files cannot be read"),
    ):
        (tmp_path / str(len(text))).mkdir()
        model = _save(tmp_path / str(len(text)), {"MLmodel": text})
        started = time.monotonic()
        with pytest.raises(ConfigError, match=says):
            read_facts(resolve(str(model), None), Artifacts(None))
        assert time.monotonic() - started < 5
    (tmp_path / "shared").mkdir()
    model = _save(tmp_path / "shared", {"MLmodel": shared, "python_env.yaml": "python: 3.11.9\n"})
    assert read_facts(resolve(str(model), None), Artifacts(None)).python_version == "3.11.9"


def test_a_model_without_python_function_cannot_be_served(tmp_path: Path) -> None:
    model = _save(tmp_path, {"MLmodel": "flavors:\n  spark: {}\nmlflow_version: 3.1\n"})
    with pytest.raises(ConfigError, match="no python_function flavor .*flavors: spark"):
        read_facts(resolve(str(model), None), Artifacts(None))


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("runs:/abc/model", "needs an MLflow tracking server"),
        ("gs://bucket/model", "not a form package reads"),
    ],
)
def test_model_uris_that_need_what_is_missing(uri: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        resolve(uri, None)


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "eu-west-1"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:5000/team", "us-east-1"),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("ghcr.io/org", None),
        ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
    ],
)
def test_ecr_hosts(host: str, region: str | None) -> None:
    assert ecr_region(host) == region


@pytest.mark.parametrize("bad", ["https://ghcr.io", "ghcr.io/Org Name", "host:port"])
def test_bad_registries(bad: str) -> None:
    with pytest.raises(ValueError, match="registry host"):
        parse_registry(bad)


def _config(tmp_path: Path, *flags: tuple[str, str], env: dict[str, str] | None = None) -> None:
    runtime = Runtime(environ=env or {})
    runtime.config = str(tmp_path / "none.yaml")
    (tmp_path / "none.yaml").write_text("{}\n")
    load_config(runtime, dict(flags))


@pytest.mark.parametrize(
    ("flags", "env", "says"),
    [
        ((), {}, "package needs a model: give --model-uri"),
        ((("model-uri", "m"), ("push", "true")), {}, "--push true needs --registry"),
        ((("model-uri", "m"), ("load", "false")), {}, "--load false removes the image"),
        (
            (("model-uri", "m"), ("pip-index-url", "https://u:hunter2@pypi.example/simple")),
            {},
            "holds credentials",
        ),
        ((("model-uri", "m"), ("pip-index-url", "pypi.example/simple")), {}, "not an http"),
        ((("model-uri", "m"), ("registry-username", "bot")), {}, "needs its password"),
        (
            (("model-uri", "m"),),
            {"MLSTEPS_PACKAGE_REGISTRY_PASSWORD": "x"},
            "no user name",
        ),
        ((("model-uri", "m"), ("ca-bundle", "/no/such.pem")), {}, "--ca-bundle '/no/such.pem'"),
        (
            (("model-uri", "m"), ("pip-index-url", "https://x.example/simple;touch /tmp/x")),
            {},
            "--pip-index-url 'https://x.example/simple;touch /tmp/x': holds ' ' ';', which no",
        ),
        (
            (("model-uri", "m"), ("pip-extra-index-url", ("https://x.example/$(id)",))),
            {},
            r"--pip-extra-index-url 'https://x.example/\$\(id\)': holds '\$' '\(' '\)'",
        ),
        (
            (("model-uri", "m"),),
            {"MLSTEPS_PACKAGE_PIP_INDEX_URL": "https://x.example/s`id`"},
            "holds '`'",
        ),
        (
            (("model-uri", "m"), ("pip-index-url", "https://u:hunter2@x.example/s p")),
            {},
            "holds credentials",
        ),
        (
            (("model-uri", "m"), ("pip-index-url", "u:hunter2@x.example/simple")),
            {},
            "not shown: it holds an @",
        ),
        (
            (("model-uri", "m"), ("base-image", "python:3.11-slim\nRUN touch /tmp/pwned")),
            {},
            "--base-image 'python:3.11-slim.nRUN touch /tmp/pwned' is not valid: expected an "
            "image reference",
        ),
        (
            (("model-uri", "m"),),
            {"MLSTEPS_PACKAGE_BASE_IMAGE": "python:3.11-slim AS x"},
            "environment variable MLSTEPS_PACKAGE_BASE_IMAGE 'python:3.11-slim AS x' is not valid",
        ),
    ],
)
def test_option_checks(
    tmp_path: Path, flags: tuple[tuple[str, str], ...], env: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        _config(tmp_path, *flags, env=env)
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("flag", "libgomp1; touch /tmp/x"),
        ("env", "libgomp1\n$(touch /tmp/x)"),  # one per line: the second is refused
        ("file", "[libgomp1, '`id`']"),
        ("file", "'libgomp1 -o APT::Get::AllowUnauthenticated=1'"),
    ],
)
def test_system_packages_are_debian_names_from_every_source(
    tmp_path: Path, source: str, value: str
) -> None:
    (tmp_path / "mlsteps.yaml").write_text(
        "package:\n  model-uri: m\n" + (f"  system-package: {value}\n" if source == "file" else "")
    )
    runtime = Runtime(
        environ={"MLSTEPS_PACKAGE_SYSTEM_PACKAGE": value} if source == "env" else {},
        config=str(tmp_path / "mlsteps.yaml"),
    )
    flags = {"system-package": (value,)} if source == "flag" else {}
    with pytest.raises(ConfigError, match="is not valid: expected a Debian package name") as err:
        load_config(runtime, flags)
    assert {"flag": "--system-package", "env": "MLSTEPS_PACKAGE_SYSTEM_PACKAGE",
            "file": "package.system-package"}[source] in err.value.message  # fmt: skip


def test_system_packages_from_the_pipeline_file_are_one_set(tmp_path: Path) -> None:
    """In any order, repeated or not, the same packages make the same image (cache key)."""
    keys = set()
    for listed in ("[libgomp1, fonts-dejavu-core, libgomp1]", "[fonts-dejavu-core, libgomp1]"):
        (tmp_path / "mlsteps.yaml").write_text(
            f"package:\n  model-uri: m\n  system-package: {listed}\n"
        )
        config = load_config(Runtime(environ={}, config=str(tmp_path / "mlsteps.yaml")), {})
        assert config.system_packages == ("fonts-dejavu-core", "libgomp1")
        keys.add(
            DepsBuild(base_image="python:3.11-slim", requirements=("x==1",),
                      system_packages=config.system_packages).cache_key()
        )  # fmt: skip
    assert len(keys) == 1


def test_the_registry_password_is_refused_in_the_pipeline_file(tmp_path: Path) -> None:
    (tmp_path / "mlsteps.yaml").write_text(
        "package:\n  model-uri: m\n  registry-password: hunter2\n"
    )
    runtime = Runtime(environ={}, config=str(tmp_path / "mlsteps.yaml"))
    with pytest.raises(ConfigError, match="credential and does not belong") as caught:
        load_config(runtime, {})
    assert "hunter2" not in caught.value.message


def test_gpu_base_gets_python_installed_first() -> None:
    """The CUDA base has no Python: the dependencies image installs the distribution's before
    making the venv. (No GPU and no pulls here: the text is what can be checked.)"""
    from steps.services.images.build import GPU_BASE_IMAGE, default_base_image

    assert default_base_image(facts("numpy"), gpu=True) == GPU_BASE_IMAGE
    assert default_base_image(facts("numpy"), gpu=False) == "python:3.11-slim"
    text = DepsBuild(
        base_image=GPU_BASE_IMAGE, requirements=("torch",), install_python=True
    ).dockerfile()
    assert text.index("apt-get install -y --no-install-recommends python3 python3-venv") < (
        text.index("RUN python3 -I /opt/mlsteps/install_requirements.py")
    )


@pytest.mark.parametrize("good", ["linux/amd64", "linux/arm64/v8", "windows/amd64", "linux/386"])
def test_platforms(tmp_path: Path, good: str) -> None:
    _config(tmp_path, ("model-uri", "m"), ("platform", good))


@pytest.mark.parametrize(
    "bad", ["garbage/zz", "linux", "linux/amd64/v8/x", "Linux/AMD64", "linux/arm64/8", "linux/"]
)
def test_bad_platforms_name_the_option(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=f"--platform '{bad}' is not valid: expected os/arch"):
        _config(tmp_path, ("model-uri", "m"), ("platform", bad))


def test_register_true_needs_a_push(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--register true .flag --register. tags the model"):
        _config(tmp_path, ("model-uri", "m"), ("register", "true"))
    with pytest.raises(ConfigError, match="environment variable|env MLSTEPS_PACKAGE_REGISTER"):
        _config(tmp_path, ("model-uri", "m"), env={"MLSTEPS_PACKAGE_REGISTER": "true"})
    _config(tmp_path, ("model-uri", "m"))  # the default: build and test here
    _config(tmp_path, ("model-uri", "m"), ("register", "false"))
    _config(tmp_path, ("model-uri", "m"), ("register", "true"), ("registry", "r.example"))


def test_build_output_loses_its_terminal_escapes() -> None:
    from steps.services.images.build import plain

    coloured = "\x1b[1;31mERROR:\x1b[0m no \x1b]8;;https://x\x07link\x1b]8;;\x07\x1b(B\x1b[?25l\r"
    assert plain(coloured) == "ERROR: no link"


def test_same_predictions_tolerates_float_noise_only() -> None:
    import math

    from steps.package.smoke import same_predictions

    assert same_predictions(
        {"predictions": [1.0, math.nan]}, {"predictions": [1.0 + 1e-12, math.nan]}
    )
    assert not same_predictions({"predictions": [1.0]}, {"predictions": [1.001]})
    assert not same_predictions({"predictions": [1, 0]}, {"predictions": [1]})
    assert not same_predictions({"predictions": ["a"]}, {"predictions": ["b"]})
    assert not same_predictions({"predictions": [1]}, {"outputs": [1]})
    assert not same_predictions({"predictions": [True]}, {"predictions": [1]})
    assert not same_predictions({"predictions": [math.nan]}, {"predictions": [0.0]})


def test_the_reference_is_the_marked_line_whatever_else_is_printed() -> None:
    from steps.package.smoke import _reference_of

    out = 'loading…\nMLSTEPS_REFERENCE={"predictions": [0, 1]}\n{"noise": 1}\n'
    assert _reference_of(out) == {"predictions": [0, 1]}
    with pytest.raises(ValueError):
        _reference_of('{"predictions": [0, 1]}\n')


def test_pins_met_names_the_first_difference() -> None:
    from importlib.metadata import version

    from steps.package.smoke import _pins_met

    assert _pins_met([f"pyyaml=={version('pyyaml')}", "click>=1", "-r other.txt"]) == ""
    assert "pyyaml" in _pins_met(["pyyaml==0.0.1"])
    assert "missing" in _pins_met(["mlsteps-no-such-dist==1.0"])


def test_no_docker_daemon_is_named_without_trains_alternative(tmp_path: Path) -> None:
    from steps.core.errors import StepFailed
    from steps.services.containers import connect

    socket = tmp_path / "docker.sock"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", f"unix://{socket}")
        with pytest.raises(StepFailed, match="cannot reach the Docker daemon") as caught:
            connect(alternative="")
    assert "--backend" not in caught.value.message and str(socket) in caught.value.message


@pytest.mark.parametrize(
    ("version", "unpickles"),
    [("0.13.0", False), ("0.14.0", True), ("13.0.0", True), ("14.0.0", True),
     ("14.0.0.dev12", True), ("14.0.1", False), ("14.0.2", False), ("25.0.1", False)],
)  # fmt: skip
def test_a_pyarrow_that_unpickles_parquet_schemas_is_not_used_to_read_bodies(
    version: str, unpickles: bool
) -> None:
    """CVE-2023-47248: a model may pin such a pyarrow; its image then refuses Parquet (415)."""
    from steps.serve.server import pickling_pyarrow

    assert pickling_pyarrow(version) is unpickles
