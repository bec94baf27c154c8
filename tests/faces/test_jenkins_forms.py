"""The lists a var keeps of its keys come from the option table, as its defaultConfig does: the
form each key's value may take (``forms``), the keys that are no flag (``notFlags``) and mlGate's
``outputKeys``. ``python -m steps.faces`` writes them; the committed vars are read here as Groovy
holds them, and a var is run under the harness after a new option reaches it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from steps import registry
from steps.core.options import Option, Section
from steps.faces import __main__ as faces_main
from steps.faces import table

pytestmark = pytest.mark.faces

REPO = Path(__file__).resolve().parents[2]
# The form of a key by its option's kind (a list that also takes a Map: PAIRS), unless the table
# names it; other keys take the var's one String or number.
KIND_FORMS = {"bool": "BOOLEAN", "list": "WORDS", "structured": "RULES"}


def declared(var: str, name: str) -> list[str]:
    """The items of ``<type> name = [a, b, …]`` in vars/<var>.groovy."""
    text = (REPO / "vars" / f"{var}.groovy").read_text(encoding="utf-8")
    (value,) = re.findall(rf"\b{name} = \[([^\]]*)\]", text)
    return [item.strip() for item in value.replace("\n", " ").split(",") if item.strip(" :")]


def table_forms(step: str) -> dict[str, str]:
    found = {}
    for entry in table.in_face(step, table.JENKINS):
        option = entry.option
        form = entry.jenkins_form
        if form is None and option is not None:
            form = "PAIRS" if option.jenkins_map else KIND_FORMS.get(option.kind)
        if form is not None:
            found[entry.jenkins_key] = f"Cli.{form}"
    return found


def as_map(items: list[str]) -> dict[str, str]:
    return dict(tuple(part.strip() for part in item.split(":", 1)) for item in items)  # type: ignore[misc]


@pytest.mark.parametrize("step", [s for s in table.steps() if s != "secrets"])
def test_each_var_checks_the_form_the_table_gives_each_key(step: str) -> None:
    assert as_map(declared(table.jenkins_var(step), "forms")) == table_forms(step)


def test_gate_and_promote_forms_are_the_tables_own_words() -> None:
    # Where the kind does not say it, the table does: schema and drift take false (off), the
    # rollback switch is true or false.
    gate = table_forms("gate")
    assert (gate["schema"], gate["drift"], gate["quality"]) == (
        "Cli.RULES_OR_FALSE",
        "Cli.RULES_OR_FALSE",
        "Cli.RULES",
    )
    assert table_forms("promote")["rollback"] == "Cli.BOOLEAN"


def test_with_vault_secrets_own_forms_differ_from_the_table_only_in_its_booleans() -> None:
    # withVaultSecrets has always taken any String, number or boolean for its true-or-false keys
    # (mlsteps checks the value): its forms are its own, the table's less the booleans.
    text = (REPO / "vars" / "withVaultSecrets.groovy").read_text(encoding="utf-8")
    assert "cli.invalidKeys(userConfig, defaultConfig, ownForms, Cli.SCALAR_OR_BOOLEAN)" in text
    own = as_map(declared("withVaultSecrets", "ownForms"))
    expected = {k: v for k, v in table_forms("secrets").items() if v != "Cli.BOOLEAN"}
    assert own == expected == {"secrets": "Cli.WORDS", "mlsteps": "Cli.WORDS"}


@pytest.mark.parametrize("step", table.steps())
def test_each_var_passes_no_flag_for_a_key_the_table_gives_none(step: str) -> None:
    expected = [
        f"'{e.jenkins_key}'"
        for e in table.in_face(step, table.JENKINS)
        if e.option is None or not e.option.cli or e.name in ("tracking-uri", "experiment")
    ]
    assert declared(table.jenkins_var(step), "notFlags") == expected


@pytest.mark.parametrize("step", table.steps())
def test_each_var_binds_each_secret_text_credential_of_the_table(step: str) -> None:
    # package's registry credential (a key of its own) is a Username with password one, bound
    # by the var itself. A var whose step has no credentials need not declare them (train, gate):
    # a credential added to its step fails here until the var binds them.
    expected = [
        f"{e.jenkins_key}: '{e.env}'"
        for e in table.in_face(step, table.JENKINS)
        if e.option is not None and e.option.secret and not e.option.cli
    ]
    if step == "package":
        assert expected == ["registryCredentialsId: 'MLSTEPS_PACKAGE_REGISTRY_PASSWORD'"]
        expected = []
    var = table.jenkins_var(step)
    text = (REPO / "vars" / f"{var}.groovy").read_text(encoding="utf-8")
    if "Map<String, String> credentials = " not in text:
        assert expected == []
        return
    assert declared(var, "credentials") == expected


def test_mlgate_records_each_output_of_the_gate() -> None:
    outputs = [f"'{o.name}'" for o in registry.options("gate").OUTPUTS]
    assert declared("mlGate", "outputKeys") == outputs


@pytest.fixture
def new_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """package with one more credential option (no flag: it comes from the environment)."""
    options = registry.options("package")
    section = options.SECTION
    more = Option(name="signing-key", help="Key that signs the image.", secret=True, cli=False)
    monkeypatch.setattr(
        options, "SECTION", Section(section.name, section.help, (*section.options, more))
    )


@pytest.mark.usefixtures("new_credential")
def test_a_new_credential_is_a_bound_key_and_no_flag_once_the_faces_are_written(
    tmp_path: Path, capsys: Any, run_jenkins: Any
) -> None:
    for part in ("actions", "vars", "src"):
        shutil.copytree(REPO / part, tmp_path / part)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    assert faces_main.main(["--check", "--root", str(tmp_path)]) == 1
    assert "'signingKeyCredentialsId'" in capsys.readouterr().err  # notFlags is stale
    assert faces_main.main(["--root", str(tmp_path)]) == 0
    script = tmp_path / "vars" / "mlPackage.groovy"
    args = {"mlsteps": "true", "modelUri": "m", "signingKeyCredentialsId": "signer"}
    run = run_jenkins("mlPackage", args, script=script, credentials={"signer": "s3cret"})
    assert run.status == "SUCCESS", run.console
    assert run.sh["args"]["script"] == "'true' '--ci' 'jenkins' 'package' '--model-uri' 'm'"
    assert run.calls("withCredentials")[0]["args"]["bindings"] == [
        {"type": "string", "credentialsId": "signer", "variable": "MLSTEPS_PACKAGE_SIGNING_KEY"}
    ]
    assert run.sh["env"]["MLSTEPS_PACKAGE_SIGNING_KEY"] == "****"  # bound, and masked
    assert "s3cret" not in run.console
