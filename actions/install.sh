#!/usr/bin/env bash
# Installs mlsteps for an mlsteps action: the first step of every actions/<step>/action.yml,
#
#     bash "$GITHUB_ACTION_PATH/../install.sh" [EXTRA...]      e.g. `... install.sh gate`
#
# mlsteps comes from the checkout the action lives in (two directories above
# $GITHUB_ACTION_PATH), so an action and the CLI it drives are always the same version, whether
# the workflow says `uses: OWNER/mlsteps/actions/<step>@<ref>` or checks mlsteps out and says
# `uses: ./mlsteps/actions/<step>`. EXTRA names the pip extras the step needs at run time.
#
# One venv per job, in $RUNNER_TEMP: a later mlsteps action of the job reuses it when it holds
# mlsteps from the same checkout with every extra that action needs, and installs into it
# otherwise (adding its extras to those already there). Prints one line saying which, and
# writes venv=PATH to $GITHUB_OUTPUT. The installer is pip; this is the one place to change it.
#
# A script beside the actions rather than a shared composite action: a composite action can
# only `uses:` another local action by a path in the workflow's repository, which is not where
# a remote action lives; its own files are reached by path from either form.
set -euo pipefail

# fail CODE TITLE MESSAGE: a workflow command's data ends at a newline and decodes %XX, so the
# paths in MESSAGE are escaped.
fail() {
  local message="${3//%/%25}"
  message="${message//$'\r'/%0D}"
  echo "::error title=$2::${message//$'\n'/%0A}"
  exit "$1"
}

action_dir="${GITHUB_ACTION_PATH:?run this as a step of an mlsteps action}"
source_dir="$(cd "$action_dir/../.." && pwd)"
venv="${RUNNER_TEMP:?run this as a step of an mlsteps action}/mlsteps-venv"

# The pyproject.toml names the project: a repository that copied actions/ may have its own.
if ! grep -qsx 'name = "mlsteps"' "$source_dir/pyproject.toml"; then
  fail 2 "mlsteps is not installable from here" "mlsteps: this action installs mlsteps from the mlsteps checkout it lives in, two\
 directories above the action ($action_dir), but $source_dir is not one (it has no\
 pyproject.toml naming the project mlsteps): the actions cannot be copied into a repository\
 on their own. Either use them from the mlsteps repository, \`uses:\
 OWNER/mlsteps/actions/<step>@<ref>\`, or check mlsteps out beside your workflow\
 (actions/checkout with \`repository: OWNER/mlsteps\` and \`path: mlsteps\`) and use \`uses:\
 ./mlsteps/actions/<step>\`; README.md, \"Using the actions\", shows both."
fi

# The extras already in the venv count only when it holds mlsteps from this same checkout.
# Extras are plain names (pyproject.toml's), kept as a space-separated list: no bash arrays, so
# the script runs on bash 3.2 too (macOS runners' /bin/bash).
have=""
if [ -x "$venv/bin/mlsteps" ] && [ "$(cat "$venv/.mlsteps-source" 2>/dev/null)" = "$source_dir" ]; then
  have="$(tr '\n' ' ' < "$venv/.mlsteps-extras" 2>/dev/null || true)"
  have="${have% }"
  missing=""
  for extra in "$@"; do
    case " $have " in
      *" $extra "*) ;;
      *) missing="$missing $extra" ;;
    esac
  done
  if [ -z "$missing" ]; then
    echo "mlsteps: reusing this job's venv $venv (mlsteps from $source_dir${have:+, extras: $have})"
    echo "venv=$venv" >> "$GITHUB_OUTPUT"
    exit 0
  fi
fi

# shellcheck disable=SC2086  # $have: the names, one word each
extras="$(printf '%s\n' $have "$@" | { grep -v '^$' || true; } | sort -u | tr '\n' ',')"
extras="${extras%,}"
spec="$source_dir"
if [ -n "$extras" ]; then
  spec="${source_dir}[$extras]"
fi
echo "mlsteps: installing $spec into this job's venv $venv with pip (later mlsteps actions of the job reuse it)"

# Until pip has finished, the venv vouches for nothing: a failed install leaves no record that
# a later action could trust, and no venv at all when this step made it.
made_venv=false
[ -d "$venv" ] || made_venv=true
rm -f "$venv/.mlsteps-source" "$venv/.mlsteps-extras"
if ! { python3 -m venv "$venv" \
  && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"; }; then
  if [ "$made_venv" = true ]; then
    rm -rf "$venv"
  fi
  fail 1 "mlsteps install failed" "mlsteps: pip could not install $spec into $venv (its messages are above)"
fi
printf '%s\n' "$extras" | tr ',' '\n' | grep -v '^$' > "$venv/.mlsteps-extras" || true
printf '%s' "$source_dir" > "$venv/.mlsteps-source"
echo "venv=$venv" >> "$GITHUB_OUTPUT"
