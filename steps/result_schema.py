"""The JSON Schema of the one object ``mlsteps --json STEP`` prints (steps/ci/base.py
Face.result), per step: what CI scripts may rely on. ``mlsteps config schema --result STEP``
prints it.
"""

from __future__ import annotations

from typing import Any

from steps import registry

# Steps whose outputs also carry names the user chose: secrets fetch with --export-outputs
# sets one output per secret, named by its variable (the value is masked, never shown here).
USER_NAMED_OUTPUTS = {"secrets"}


def result_schema(step: str) -> dict[str, Any]:
    module = registry.options(step)
    section = module.SECTION.name  # rollback reports as promote: it is promote's section
    outputs: dict[str, Any] = {
        "type": "object",
        "description": "The step's named outputs (on failure: what it could still tell).",
        "properties": {o.name: {"type": "string"} for o in module.OUTPUTS},
        "additionalProperties": {"type": "string"} if step in USER_NAMED_OUTPUTS else False,
    }
    kind = {"type": "string", "pattern": r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$"}
    action = {
        "type": "object",
        "description": "One action of the plan; further keys are the action's own data.",
        "required": ["kind", "line"],
        "properties": {"kind": kind, "line": {"type": "string", "minLength": 1}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"mlsteps {step} --json result",
        "type": "object",
        "required": ["step", "ok", "exit_code", "outputs", "error"],
        "additionalProperties": False,
        "properties": {
            "step": {
                "enum": [section, "mlsteps"],
                "description": "The step; mlsteps when the command line itself was refused.",
            },
            "ok": {"type": "boolean"},
            "exit_code": {
                "type": "integer",
                "minimum": 0,
                "maximum": 255,
                "description": "0 done, 1 the step failed, 2 bad input, 3 a gate said no, "
                "130/143 interrupted (secrets exec: the command's own code).",
            },
            "outputs": outputs,
            "error": {"type": ["string", "null"], "description": "One paragraph, or null."},
            "dry_run": {"const": True},
            "plan": {"type": "array", "items": action},
            "applied": {
                "type": "array",
                "items": kind,
                "description": "The kinds of the plan's actions the run applied, in order.",
            },
        },
        "dependentRequired": {"dry_run": ["plan"], "plan": ["dry_run"]},
        "if": {"properties": {"ok": {"const": True}}},
        "then": {"properties": {"exit_code": {"const": 0}, "error": {"type": "null"}}},
        "else": {
            "properties": {"exit_code": {"not": {"const": 0}}, "error": {"type": "string"}},
            "not": {"required": ["dry_run"]},
        },
    }
