"""The first text of a new step's face files, written once when the file is missing; the
generator then fills their generated parts (inputs, outputs, env:, defaultConfig, the key and
output lists) as for every step. After that the files are the step's own, written by hand
around the generated parts.
"""

from __future__ import annotations

from steps import registry
from steps.faces import table
from steps.faces.actions import scalar
from steps.faces.text import html_text


def _help(step: str) -> str:
    return registry.help_line(step)


def action_yml(step: str) -> str:
    # The install and run steps as the five actions have them (actions/train/action.yml).
    return f"""\
name: mlsteps {step}
description: {scalar(_help(step), 0)}
author: mlsteps
branding:
  icon: box
  color: blue

inputs:

runs:
  using: composite
  steps:
    - name: Install mlsteps
      id: install
      shell: bash
      # From this action's own checkout into the job's one venv (actions/install.sh says how).
      run: {" ".join(['bash "$GITHUB_ACTION_PATH/../install.sh"', *registry.install_extras(step)])}

    - name: {step.capitalize()}
      id: {step}
      shell: bash
      env:
        MLSTEPS_VENV: ${{{{ steps.install.outputs.venv }}}}
      # exec: a cancelled job's SIGINT then reaches mlsteps itself, which cleans up.
      run: exec "$MLSTEPS_VENV/bin/mlsteps" --ci github {step}
"""


def action_readme(step: str) -> str:
    return f"""\
# `actions/{step}`: {_help(step).rstrip(".")}

A composite action around `mlsteps {step}`: it installs mlsteps from the action's own checkout
and runs `mlsteps --ci github {step}`. Inputs left empty are not set, so values from the
`config` file (an `mlsteps.yaml`) still apply.

## Inputs

<!-- inputs:begin -->
<!-- inputs:end -->

## Outputs

<!-- outputs:begin -->
<!-- outputs:end -->

The tables above, like `action.yml`'s inputs and outputs, are generated from mlsteps' option
tables by `python -m steps.faces`; a test fails when they drift.
"""


def groovy(step: str) -> str:
    # As vars/mlPackage.groovy: check the keys, run the command line, return the outputs.
    var = table.jenkins_var(step)
    return f"""\
/*
 * {var}: run `mlsteps {step}` and return its outputs.
 *
 * Keys are the `mlsteps {step}` options in camelCase; see {var}.txt. Behaviour lives in mlsteps:
 * this step only builds the command line, runs it and reads back the outputs file mlsteps writes.
 */

import mlsteps.jenkins.Cli

def call(Map userConfig = [:]) {{
    Map defaultConfig = [

    ]
    Cli cli = new Cli(this, '{var}')
    // The forms a key's value may take (generated from the option table: python -m steps.faces);
    // keys not listed take one String or number.
    Map<String, String> forms = [:]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (problem) {{
        error problem
    }}
    Map config = defaultConfig + userConfig

    // Keys that are not `mlsteps {step}` flags (generated). A Map of rules goes as JSON
    // (Cli.rulesAsJson).
    List<String> notFlags = []
    String script = Cli.shellLine(Cli.command(config, ['{step}']) +
        Cli.flags(Cli.rulesAsJson(config, forms), Cli.flagKeys(defaultConfig, notFlags)))
    // string() is a pipeline symbol, so the bindings are made here, not in a @NonCPS helper.
    // Each *CredentialsId key: the Secret text credential mlsteps reads from the variable named
    // (generated; a Username with password one needs usernamePassword(), as in mlPackage).
    Map<String, String> credentials = [:]
    List bindings = []
    for (Map binding : Cli.credentialBindings(config, credentials)) {{
        bindings << string(credentialsId: binding.credentialsId, variable: binding.variable)
    }}
    List<String> environment = Cli.mlflowEnvironment(config)
    int status = cli.run('{step}', script, environment, bindings)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {{
        error cli.failure('{step}', status, [:])
    }}
    return outputs
}}
"""


def page(step: str) -> str:
    var = table.jenkins_var(step)
    return f"""\
<p>
Runs <code>mlsteps {step}</code>: {html_text(_help(step))}
Returns the outputs as a Map with these keys:
</p>
<!-- outputs:begin -->
<!-- outputs:end -->

<pre>
def result = {var}()
</pre>

<p>
Keys are the <code>mlsteps {step}</code> options in camelCase. A key that is not listed fails
the step. Keys left unset are not passed, so values from the <code>config</code> file apply.
</p>
<!-- keys:begin -->
<!-- keys:end -->
"""
