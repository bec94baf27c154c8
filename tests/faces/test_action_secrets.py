"""actions/secrets under act (self-hosted: the job runs on this machine), against the real
OpenBao server and Redis (for a database lease): the fetch exports the values to $GITHUB_ENV
masked, a later step sees them, the CLI run as the README shows sets a value as a step output,
and the `if: always()` cleanup step with `revoke: true` revokes the lease and the login token on
the server. Bad input fails the step and names the input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faces.secrets_setup import VaultSecrets, sha

pytestmark = [pytest.mark.faces, pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = (REPO / "tests" / "faces" / "workflows" / "secrets.yml").read_text(encoding="utf-8")


def run_workflow(run_act: Any, setup: VaultSecrets, **variables: str) -> Any:
    (output_request,) = [r for r in setup.requests if r.endswith("| SHELL_VALUE")]
    return run_act(
        WORKFLOW,
        variables={
            "VAULT_ADDR": setup.vault.addr,
            "AUTH_MOUNT": setup.auth_mount,
            "LEASE_PREFIX": setup.creds_path,
            "PYTHON": sys.executable,
            "SECRETS": "\n".join(setup.requests),  # one request per line, as documented
            "OUTPUT_SECRET": output_request.replace("| SHELL_VALUE", "| OUTPUT_VALUE"),
            **variables,
        },
        secrets={
            "VAULT_ROLE_ID": setup.role_id,
            "VAULT_SECRET_ID": setup.secret_id,
            "VAULT_ROOT": setup.vault.root_token,
        },
    )


def leaks(result: Any, setup: VaultSecrets) -> list[str]:
    """The secrets (by name) that reached the job's log or a step's outputs, raw, escaped or by
    a line, but for the outputs the `direct` step opted into (--export-outputs)."""
    outputs = [v for step, out in result.outputs.items() if step != "direct" for v in out.values()]
    return setup.leaks(result.log, *outputs)


def list_form(setup: VaultSecrets) -> str:
    """setup.requests in the documented list form, each KV value pinned to its version 1."""
    items = []
    for request in setup.requests:
        head, _, env = request.partition(" | ")
        path, key = head.split()
        item: dict[str, Any] = {"path": path, "key": key, "env": env}
        if path.startswith("secret/"):
            item["version"] = 1
        items.append(item)
    return json.dumps(items)


@pytest.mark.parametrize("form", ["lines", "list"])
def test_fetch_exports_masked_values_and_the_cleanup_step_revokes(
    run_act: Any, vault_server: Any, redis_server: Any, form: str
) -> None:
    setup = VaultSecrets(vault_server, redis_server, "github")
    users_before = set(redis_server.acl_users())
    result = run_workflow(
        run_act, setup, **({"SECRETS": list_form(setup)} if form == "list" else {})
    )
    assert result.returncode == 0, result.log + result.stderr
    assert result.results.pop("0") == "success"  # the copy standing in for a checkout
    assert result.results == {
        "fetch": "success",
        "use": "success",
        "direct": "success",
        "use-output": "success",
        "revoke": "success",
        "after": "success",
    }, result.results

    names = result.outputs["fetch"]["names"].split(",")
    assert sorted(names) == sorted([*setup.values, "DB_USERNAME", "DB_PASSWORD"])
    assert result.outputs["fetch"]["lease-file"].endswith(".json")
    assert result.outputs["fetch"]["file"] == ""
    # A later step saw every value whole (multi-line, JSON, quotes, unicode) in its environment.
    seen = result.outputs["use"]
    assert {n: seen[f"sha-{n}"] for n in setup.values} == {
        n: sha(v) for n, v in setup.values.items()
    }
    # While the job ran, the login token and the database lease were alive on the server...
    assert json.loads(seen["during"]) == {"tokens": 1, "leases": 1}
    # ...and the CLI, run as the README shows, set a value as its step output.
    assert result.outputs["use-output"]["sha"] == sha(setup.values["SHELL_VALUE"])
    assert result.outputs["direct"]["OUTPUT_VALUE"] == setup.values["SHELL_VALUE"]

    # The cleanup step revoked both fetches' leases and tokens and removed their records.
    assert result.outputs["revoke"]["revoked"] != "0"
    assert json.loads(result.outputs["after"]["held"]) == {"tokens": 0, "leases": 0}
    assert result.outputs["after"]["records"] == "0"
    assert setup.held() == {"tokens": 0, "leases": 0}
    assert set(redis_server.acl_users()) == users_before

    # Printed values show masked, every line of a multi-line one included.
    assert "shell sees ***" in result.log
    assert leaks(result, setup) == []


def test_bad_input_fails_the_step_naming_the_input_and_cleanup_still_runs(
    run_act: Any, vault_server: Any, redis_server: Any
) -> None:
    setup = VaultSecrets(vault_server, redis_server, "github")
    result = run_workflow(run_act, setup, METHOD="ldap")
    assert result.returncode != 0
    assert result.results["fetch"] == "failure"
    assert "use" not in result.results
    assert result.results["revoke"] == "success"
    errors = [a for a in result.annotations if a["level"] == "error"]
    assert [e["step"] for e in errors] == ["fetch"]
    assert "input 'method' (env MLSTEPS_SECRETS_METHOD) 'ldap' is not valid" in errors[0]["message"]
    assert setup.held() == {"tokens": 0, "leases": 0}


def test_revoke_input_other_than_true_or_false_fails(
    run_act: Any, vault_server: Any, redis_server: Any
) -> None:
    setup = VaultSecrets(vault_server, redis_server, "github")
    result = run_workflow(run_act, setup, REVOKE="yes please")
    assert result.returncode != 0
    assert result.results["fetch"] == "failure"
    errors = [a for a in result.annotations if a["level"] == "error"]
    if not errors:
        # act can drop the last line of a shell step that exits right after it (seen once in
        # ~6 clean-clone CI runs, under load); the step still failed, as asserted above. One
        # more run must show the annotation — a message that never comes fails the test.
        result = run_workflow(run_act, setup, REVOKE="yes please")
        assert result.results["fetch"] == "failure"
        errors = [a for a in result.annotations if a["level"] == "error"]
    assert errors == [
        {"step": "fetch", "level": "error", "message": "input 'revoke' must be true or false"}
    ]
    assert setup.held() == {"tokens": 0, "leases": 0}
