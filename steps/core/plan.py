"""What a step will do, built before it does anything.

``--dry-run`` prints the plan and stops; a run walks the same list of actions and applies each
one, so the dry run cannot drift from what really happens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Action:
    kind: str  # stable machine name, e.g. "container.run"
    line: str  # what a person reads, e.g. "run python train.py in trainer:1 (GPUs: none)"
    data: Mapping[str, Any] = field(default_factory=dict)  # JSON form; never a secret value

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, **dict(self.data)}


@dataclass
class Plan:
    step: str
    actions: list[Action] = field(default_factory=list)

    def add(self, kind: str, line: str, **data: Any) -> None:
        self.actions.append(Action(kind, line, data))

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "actions": [a.to_json() for a in self.actions]}

    def lines(self) -> list[str]:
        return [f"{i}. {a.line}" for i, a in enumerate(self.actions, 1)]

    def apply(self, handlers: Mapping[str, Callable[[Action], None]]) -> list[str]:
        """Run each action's handler in order; returns the kinds applied, for fidelity checks."""
        missing = [a.kind for a in self.actions if a.kind not in handlers]
        if missing:  # a programming error, caught by the dry-run fidelity tests
            raise RuntimeError(f"no handler for plan actions: {missing}")
        applied = []
        for action in self.actions:
            handlers[action.kind](action)
            applied.append(action.kind)
        return applied

    def __str__(self) -> str:
        return json.dumps(self.to_json(), indent=2)
