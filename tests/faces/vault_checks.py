"""What a Vault server holds that a secrets face must have revoked: the tokens that logins at
an auth mount made and are still alive, and the leases under a path prefix. Asked with the
root token through the API, so a test sees the server's own answer.

Also a script, for a step of a workflow or a Jenkins block to look while it runs:

    VAULT_ROOT_TOKEN=... python vault_checks.py ADDR AUTH_MOUNT LEASE_PREFIX
    # prints {"tokens": n, "leases": n}
"""

from __future__ import annotations

import json
import os
import sys

import requests


def _ask(addr: str, root: str, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(
        method, f"{addr}/v1/{path}", headers={"X-Vault-Token": root}, json=body, timeout=10
    )


def login_tokens(addr: str, root: str, auth_mount: str) -> list[str]:
    """Accessors of the live tokens made by logins at auth/<auth_mount>/."""
    listed = _ask(addr, root, "LIST", "auth/token/accessors")
    listed.raise_for_status()
    found = []
    for accessor in listed.json()["data"]["keys"]:
        looked = _ask(addr, root, "POST", "auth/token/lookup-accessor", {"accessor": accessor})
        if looked.status_code != 200:  # revoked between the list and the lookup
            continue
        if looked.json()["data"].get("path", "").startswith(f"auth/{auth_mount.strip('/')}/"):
            found.append(accessor)
    return found


def leases(addr: str, root: str, prefix: str) -> list[str]:
    """Ids of the leases under `prefix` (e.g. database/creds/reader)."""
    listed = _ask(addr, root, "LIST", f"sys/leases/lookup/{prefix.strip('/')}/")
    if listed.status_code == 404:
        return []
    listed.raise_for_status()
    return [f"{prefix.strip('/')}/{key}" for key in listed.json()["data"]["keys"]]


if __name__ == "__main__":
    addr, mount, prefix = sys.argv[1:4]
    root = os.environ["VAULT_ROOT_TOKEN"]
    print(
        json.dumps(
            {
                "tokens": len(login_tokens(addr, root, mount)),
                "leases": len(leases(addr, root, prefix)),
            }
        )
    )
