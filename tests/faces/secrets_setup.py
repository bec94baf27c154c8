"""A real OpenBao server set up for one test of a secrets face, and the values it holds.

Shared by the GitHub (act) and Jenkins (Groovy harness) tests of the secrets faces: KV values
of awkward shapes, a database role that leases Redis users, and an AppRole allowed to read
both, all under names of the test's own on the session's server.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from tests import vault_setup as vs
from tests.faces import vault_checks
from tests.leak_forms import leaked


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def awkward_values(tag: str) -> dict[str, str]:
    """Values of the shapes that slip past masks and quoting, and the names they go under."""
    return {
        "MULTI_VALUE": f"-----BEGIN KEY {tag}-----\nsecond 'line' {tag}\n\n-----END KEY-----\n",
        "JSON_VALUE": json.dumps({"user": f"svc-{tag}", "pw": 'p"w\\d;|x'}),
        # Pretty-printed JSON, the classic vault-action leak. Its `{` and `}` lines tell no leak
        # (nor are they masks: they would star every brace in the log); its other lines do.
        "PRETTY_JSON_VALUE": json.dumps({"user": f"ml-{tag}", "password": "p@ss"}, indent=2),
        "SHELL_VALUE": f'$HOME ${{PATH}} `id` it\'s "q" 100% %s \\n {tag}',
        "UNICODE_VALUE": f"pässwörd 🔑 日本語 {tag}",
        # Printed trimmed, or shown by a viewer that strips colour: those forms are masks too.
        "SPACED_VALUE": f"  spaced {tag}  ",
        "COLOR_VALUE": f"\x1b[31mred {tag}\x1b[0m",
    }


class VaultSecrets:
    """KV values (`values`, by variable name), a database role making leased Redis users
    (`creds_path`) and an AppRole (`auth_mount`, `role_id`, `secret_id`) whose token may read
    both; `requests` are the vault-action lines that fetch them all."""

    def __init__(self, vault: Any, redis: Any, face: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.vault = vault
        self.values = awkward_values(tag)
        self.kv_path = f"faces-{face}/{tag}"
        vs.put_kv(vault, "secret", self.kv_path, {k.lower(): v for k, v in self.values.items()})
        self.creds_path = vs.dynamic_creds_role(
            vault, redis, role="reader", mount=f"database-{tag}"
        )
        self.auth_mount = f"approle-{tag}"
        reader = vs.read_policy(
            vault, f"faces-{tag}", [f"secret/data/{self.kv_path}", self.creds_path]
        )
        self.role_id, self.secret_id = vs.approle(
            vault, "ci", [reader], mount=self.auth_mount, token_ttl="10m"
        )
        self.requests = [f"secret/{self.kv_path} {name.lower()} | {name}" for name in self.values]
        self.requests += [
            f"{self.creds_path} username | DB_USERNAME",
            f"{self.creds_path} password | DB_PASSWORD",
        ]

    def held(self) -> dict[str, int]:
        """What the server still holds of this setup's logins: live tokens, leases."""
        addr, root = self.vault.addr, self.vault.root_token
        return {
            "tokens": len(vault_checks.login_tokens(addr, root, self.auth_mount)),
            "leases": len(vault_checks.leases(addr, root, self.creds_path)),
        }

    def secrets(self) -> dict[str, str]:
        """What must never appear in a log, by name: every value and the AppRole login."""
        return {**self.values, "ROLE_ID": self.role_id, "SECRET_ID": self.secret_id}

    def leaks(self, *texts: str) -> list[str]:
        """The names of the secrets that show in any of texts, raw or base64-, URL- or
        JSON-escaped, or by a line of 8 characters or more (tests/leak_forms.py)."""
        return leaks_in(self.secrets(), *texts)


def leaks_in(values: Mapping[str, str], *texts: str) -> list[str]:
    """The names of the values that show in any of texts (tests/leak_forms.py): names only, so
    that a failing test does not print a value either."""
    found = {name for text in texts for name in leaked(text, values)}
    return [name for name in values if name in found]
