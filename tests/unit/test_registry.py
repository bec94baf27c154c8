"""The registry's one naming rule: a step's registry key is its command, its section's name,
its action's folder and the prefix of its variables; its Jenkins var is a Groovy name. The faces
generator (steps/faces) and the CLI both lean on it, so a step that broke it would get faces
that name another section's variables."""

from __future__ import annotations

import re

import pytest

from steps import registry

STEP_NAME = re.compile(r"[a-z][a-z0-9]*")  # a folder, a command, an env prefix, a YAML key
GROOVY_NAME = re.compile(r"[a-z][A-Za-z0-9]*")


@pytest.mark.parametrize("step", list(registry.STEPS))
def test_a_steps_name_is_its_command_its_section_and_its_package(step: str) -> None:
    assert STEP_NAME.fullmatch(step), step
    assert step in registry.load(step).COMMANDS
    assert registry.options(step).SECTION.name == step
    assert registry.STEPS[step] == f"steps.{step}"


@pytest.mark.parametrize("step", list(registry.STEPS))
def test_a_steps_jenkins_var_and_install_extras_are_well_formed(step: str) -> None:
    package = registry.load(step)
    assert GROOVY_NAME.fullmatch(package.JENKINS_VAR), package.JENKINS_VAR
    assert all(STEP_NAME.fullmatch(extra) for extra in registry.install_extras(step))


def test_the_names_are_checked_against_a_form_that_can_fail() -> None:
    for bad in ("deploy-canary", "Deploy", "2deploy", "deploy\n", "a b"):
        assert not STEP_NAME.fullmatch(bad)
    assert not GROOVY_NAME.fullmatch("ml-deploy")
