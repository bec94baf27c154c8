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
# In the order tried, each printing one line saying which, and writing venv=PATH to
# $GITHUB_OUTPUT:
# 1. This job's venv, when it holds mlsteps from this same checkout with every extra this
#    action needs (a later mlsteps action of the job: no installer runs, well under a second).
# 2. A cached venv built from the same mlsteps version and source (a digest of pyproject.toml
#    and steps/**: a branch may change code without changing the version), for the same Python
#    and pip settings, in the last week, with those extras. The cache is the job's own
#    ($RUNNER_TEMP), or, where the runner's owner sets MLSTEPS_INSTALL_CACHE=shared, the runner's
#    tool cache, which self-hosted runners keep across jobs (all of them run as one user: only
#    where every job on the runner is trusted alike).
# 3. uv builds a new one there: the `uv` on PATH (setup-uv, a self-hosted runner's), else the
#    one this script bootstrapped into the cache with pip earlier, else it bootstraps it now.
#    The venv is built in a temp dir (relocatable) and published by an atomic rename.
# 4. pip, as before uv, into a venv in $RUNNER_TEMP, with one line saying why uv was not used:
#    uv cannot be had, the runner configures pip in a way this script does not hand on to uv
#    (so a private index is never bypassed), or uv failed.
# A failed install leaves no venv it made and no record vouching for one.
#
# The cache is trusted only as far as it is private: its dir and every entry must be owned by
# this user, not links, not writable by group or others and without ACLs (a shared runner
# host), and an entry's marker must name this exact key. Bash 3.2 (macOS runners' /bin/bash):
# no arrays.
#
# A script beside the actions rather than a shared composite action: a composite action can
# only `uses:` another local action by a path in the workflow's repository, which is not where
# a remote action lives; its own files are reached by path from either form.
set -euo pipefail

# The uv this script bootstraps when the runner has none: the version .ci/constraints.txt pins.
uv_version=0.13.10

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
runner_temp="${RUNNER_TEMP:?run this as a step of an mlsteps action}"
record="$runner_temp/mlsteps-job"  # this job's venv, its source and its extras, one per line
# The job's venv keeps its name (the venv itself, or a link to the cached one), so that a
# workflow's own steps can run "$RUNNER_TEMP/mlsteps-venv/bin/mlsteps".
venv="$runner_temp/mlsteps-venv"

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

# missing HAVE WANTED...: the names of WANTED not in the space-separated list HAVE.
missing() {
  local have=" $1 " name out=""
  shift
  for name in "$@"; do
    case "$have" in
      *" $name "*) ;;
      *) out="$out $name" ;;
    esac
  done
  printf '%s' "${out# }"
}

# published VENV EXTRAS: the job's venv is VENV; the record vouches for it.
published() {
  if [ "$1" != "$venv" ]; then
    rm -rf "$venv"  # the job's own: a link to another cached venv, or pip's venv
    ln -s "$1" "$venv"
  fi
  echo "venv=$venv" >> "$GITHUB_OUTPUT"
  printf '%s\n%s\n%s\n' "$1" "$source_dir" "$2" > "$record"
}

# 1. This job's venv. The extras are plain names (pyproject.toml's), kept space-separated.
have="" job_venv="" job_source=""
if [ -f "$record" ]; then
  { read -r job_venv; read -r job_source; read -r have; } < "$record" || true
  if [ "$job_source" = "$source_dir" ] && [ -x "$job_venv/bin/mlsteps" ] \
    && [ "$venv" -ef "$job_venv" ]; then
    if [ -z "$(missing "$have" "$@")" ]; then
      echo "mlsteps: reusing this job's venv $venv (mlsteps from"\
        "$source_dir${have:+, extras: $have})"
      echo "venv=$venv" >> "$GITHUB_OUTPUT"
      exit 0
    fi
  else
    have=""  # the extras of another checkout's install are not this one's to claim
  fi
fi
# Until an install has finished, nothing vouches for a venv.
rm -f "$record"

# shellcheck disable=SC2086  # $have: the names, one word each
extras="$(printf '%s\n' $have "$@" | { grep -v '^$' || true; } | sort -u | tr '\n' ' ')"
extras="${extras% }"
spec="$source_dir"
if [ -n "$extras" ]; then
  spec="${source_dir}[$(printf '%s' "$extras" | tr ' ' ',')]"
fi

# private DIR: owned by this user, not a link, not writable by group or others, no ACL (a
# trailing + in ls's mode).
private() {
  [ -d "$1" ] && [ ! -L "$1" ] && [ -O "$1" ] || return 1
  case "$(ls -ld "$1")" in
    ?????w* | ????????w* | ??????????+*) return 1 ;;
  esac
}

hash_files="sha256sum"
command -v sha256sum > /dev/null 2>&1 || hash_files="shasum -a 256"
sha256() {
  $hash_files | cut -c1-64
}

# The key of a cached venv: mlsteps' version and source, and the Python it runs on.
key() {
  local version digest files=pyproject.toml
  version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$source_dir/steps/__init__.py" \
    2> /dev/null || true)"
  [ -d "$source_dir/steps" ] && files="$files steps"
  # shellcheck disable=SC2086  # $files: fixed names, one word each
  digest="$(cd "$source_dir" && find $files -type f ! -name '*.pyc' -print | LC_ALL=C sort \
    | tr '\n' '\0' | xargs -0 $hash_files | sha256)"
  printf 'mlsteps %s\nsource sha256:%s\npython %s %s\ninstall %s' "${version:-unknown}" \
    "$digest" "$python_exe" "$python_build" "$(printf '%s\n' "${UV_INDEX_URL:-}" \
    "${UV_EXTRA_INDEX_URL:-}" "${SSL_CERT_FILE:-}" "$@" | sha256)"
}

# python3 as pip's venv would run it: its real path, version and platform.
# -I everywhere: the workflow's working directory is the repository's, whose files (a sysconfig.py,
# a pip/ folder) must not be imported in place of Python's own.
{ read -r python_exe; read -r python_build; } <<< "$(python3 -I -c 'import sys, sysconfig
print(sys.executable)
print(sys.version.replace("\n", " "), sysconfig.get_platform())')"

# Across jobs only where the runner's owner says so (MLSTEPS_INSTALL_CACHE=shared in the runner's
# environment): every job on the runner runs as the same user, and a job that runs code it does
# not trust (a candidate model's, a training's) could write into a venv later jobs run. Without
# it, the cache is the job's own, in $RUNNER_TEMP.
cache="$runner_temp/mlsteps-cache"
if [ "${MLSTEPS_INSTALL_CACHE:-job}" = shared ] && [ -n "${RUNNER_TOOL_CACHE:-}" ]; then
  cache="$RUNNER_TOOL_CACHE/mlsteps"
fi
(umask 077 && mkdir -p "$cache") 2> /dev/null || true
if ! private "$cache"; then
  echo "mlsteps: not using the tool cache's $cache: it is not a directory private to this user"
  cache="$runner_temp/mlsteps-cache"
  (umask 077 && mkdir -p "$cache")
fi
# How the runner configures pip, for uv to install what pip would: pip's own account of its
# configuration files and PIP_* variables, each name's last value winning as in pip. Read before
# the cache is looked in: these settings are part of a cached venv's key.
why=""
uv=""
uv_from=""
uv_global="--no-config --quiet"
# The system's CA store, as pip uses (a TLS-inspecting proxy's CA is there): by variables, which a
# uv that knows neither name ignores, where a flag it does not know would fail the install.
# uv is told pip's settings and nothing else: the runner's own UV_* variables (an index, an
# override, bytecode compilation) would make it install what pip would not. UV_CACHE_DIR only
# says where uv keeps its downloads.
ignored=""
for name in $(env | sed -n 's/^\(UV_[A-Za-z0-9_]*\)=.*/\1/p'); do
  case "$name" in
    UV_CACHE_DIR) ;;
    *) unset "$name"; ignored="$ignored $name" ;;
  esac
done
[ -z "$ignored" ] || echo "mlsteps: uv is not given the runner's${ignored} (it installs what pip's configuration says)"
export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1
index_url="" extra_index_url="" find_links="" constraint="" trusted_host="" no_index=""
if ! pip_config="$(python3 -I -m pip config list 2> /dev/null)"; then
  why="python3 -m pip cannot show the runner's pip configuration"
fi
for section in global install :env:; do
  while IFS= read -r line; do
    case "$line" in "$section".*=*) ;; *) continue ;; esac
    name="${line#"$section".}"
    name="${name%%=*}"
    value="${line#*=}"
    value="${value#?}"  # pip quotes each value
    value="${value%?}"
    # A list over several lines in pip.conf is printed with \n between its items (Python's repr):
    # items, as pip splits them. Any other escape is not read here: pip installs.
    value="$(printf '%s' "$value" | sed 's/\\n/ /g')"
    case "$value" in
      *\\*) why="the runner's pip configuration sets $name to a value this script cannot read" ;;
    esac
    case "$name" in
      index-url) index_url="$value" ;;
      extra-index-url) extra_index_url="$value" ;;
      find-links) find_links="$value" ;;
      constraint) constraint="$value" ;;
      trusted-host) trusted_host="$value" ;;
      no-index) no_index="$value" ;;
      cert) export SSL_CERT_FILE="$value" ;;
      timeout | default-timeout) export UV_HTTP_TIMEOUT="$value" ;;
      disable-pip-version-check | no-input | progress-bar | root-user-action | no-color) ;;
      cache-dir | no-cache-dir) ;;  # where pip keeps its downloads: uv has its own cache
      config-file) ;;              # PIP_CONFIG_FILE: its settings are listed with the rest
      *)
        why="the runner's pip configuration sets $name, which this script does not hand on to uv"
        ;;
    esac
  done <<< "${pip_config:-}"
done
set --  # the install's options for uv (no arrays on bash 3.2)
set -f  # lists of URLs and paths split on blanks, never globbed
# The index URLs reach uv in its environment, not its command line, which other users of the
# machine can read (a URL may hold a password).
[ -z "$index_url" ] || export UV_INDEX_URL="$index_url"
if [ -n "$extra_index_url" ]; then
  UV_EXTRA_INDEX_URL="$extra_index_url"  # space-separated, as uv reads it
  export UV_EXTRA_INDEX_URL
fi
# pip takes the best version any index offers; uv's default would stop at the first index.
[ -z "$extra_index_url" ] || set -- "$@" --index-strategy unsafe-best-match
for link in $find_links; do set -- "$@" --find-links "$link"; done
for file in $constraint; do set -- "$@" --constraint "$file"; done
for host in $trusted_host; do set -- "$@" --allow-insecure-host "$host"; done
set +f
case "$no_index" in 1 | true | yes | on) set -- "$@" --no-index ;; esac
job_key="$(key "$@")"  # $@: the options uv is given

# usable ENTRY: a cached venv this job may run: private, its marker names this key, and it was
# built in the last week (its dependencies were resolved then: a venv in use is still rebuilt,
# so that their security releases arrive as they would with a fresh install).
usable() {
  private "$1" && [ -x "$1/bin/mlsteps" ] && [ -f "$1/.mlsteps-extras" ] \
    && [ "$(cat "$1/.mlsteps-key" 2> /dev/null)" = "$job_key" ] \
    && [ -n "$(find "$1/.mlsteps-extras" -mtime -7 2> /dev/null)" ]
}

# 2. A cached venv with this key and every extra wanted; none when the runner configures pip in
# a way uv is not told (pip installs, as that setting may say what to refuse).
if [ -z "$why" ]; then
  for entry in "$cache"/venv-*; do
    if usable "$entry"; then
      cached="$(cat "$entry/.mlsteps-extras")"
      # shellcheck disable=SC2086  # $extras: the names, one word each
      if [ -z "$(missing "$cached" $extras)" ]; then
        echo "mlsteps: reusing the cached venv $entry (mlsteps from $source_dir, same version,"\
          "source and Python${cached:+; extras: $cached})"
        touch "$entry/.mlsteps-key" 2> /dev/null || true  # used: kept from the pruning below
        published "$entry" "$cached"
        exit 0
      fi
    fi
  done
fi

# 3. uv builds a new venv, when it can be had and can honour how the runner configures pip
# (read above).

# reason LOG: the line of an installer's messages that says why it failed.
reason() {
  local line
  line="$(printf '%s\n' "$1" | grep -m 1 -i '^error' || true)"
  line="${line:-${1##*$'\n'}}"
  printf '%s' "${line:-no message}"
}

# rename FROM TO: rename(2), atomic, and it will not replace a dir another job published.
rename() {
  python3 -I -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$1" "$2" 2> /dev/null
}
boot="" build=""
# Each path quoted on its own: a runner's path may hold spaces.
trap '[ -z "$boot" ] || rm -rf "$boot"; [ -z "$build" ] || rm -rf "$build"' EXIT

if [ -z "$why" ]; then
  tool="$cache/uv-$uv_version"
  if command -v uv > /dev/null 2>&1; then
    uv="$(command -v uv)"
    uv_from="uv on PATH"
  elif private "$tool" && [ -x "$tool/bin/uv" ]; then
    uv="$tool/bin/uv"
    uv_from="uv $uv_version bootstrapped earlier into $cache"
  else
    # Into a temp dir renamed when whole: a half-done bootstrap is never found and used.
    boot="$(mktemp -d "$cache/boot.XXXXXX" 2>&1)" || boot=""
    if [ -n "$boot" ] && log="$(python3 -I -m pip install --quiet --disable-pip-version-check --target "$boot" \
      "uv==$uv_version" 2>&1)" && "$boot/bin/uv" --version > /dev/null 2>&1; then
      uv_from="uv $uv_version bootstrapped into $cache"
      if rename "$boot" "$tool"; then
        uv="$tool/bin/uv"
      else
        uv="$boot/bin/uv"  # for this install only: the tool cache holds someone else's
      fi
    elif [ -z "$boot" ]; then
      why="uv is not on PATH and this script cannot write in $cache to bootstrap it"
    else
      why="uv is not on PATH and pip could not bootstrap uv==$uv_version${log:+ ($(reason "$log"))}"
    fi
  fi
fi

if [ -n "$uv" ] && ! build="$(mktemp -d "$cache/build.XXXXXX" 2> /dev/null)"; then
  why="this script cannot write in $cache to build the venv"
fi
if [ -n "$build" ]; then
  entry="$cache/venv-$(printf '%s\n%s\n' "$job_key" "$extras" | sha256 | cut -c1-16)"
  echo "mlsteps: installing $spec into the cached venv $entry with $uv_from (later mlsteps"\
    "actions of the job, and of later jobs where the runner shares its tool cache, reuse it)"
  # umask 022: a venv others may write to would be passed over by the next job (private).
  # shellcheck disable=SC2086  # $uv_global: fixed flags, one word each
  if log="$(umask 022 && "$uv" $uv_global venv --relocatable --no-python-downloads \
    --python "$python_exe" "$build/venv" 2>&1 \
    && "$uv" $uv_global pip install --python "$build/venv/bin/python" "$@" "$spec" 2>&1)"; then
    # The name taken by another job that published the same meanwhile (use it), or by something
    # not to be trusted (publish beside it).
    if printf '%s' "$job_key" > "$build/venv/.mlsteps-key" \
      && printf '%s' "$extras" > "$build/venv/.mlsteps-extras" \
      && { rename "$build/venv" "$entry" \
        || { usable "$entry" && [ "$(cat "$entry/.mlsteps-extras")" = "$extras" ]; } \
        || { entry="$entry-$$" && rename "$build/venv" "$entry"; }; }; then
      published "$entry" "$extras"
      # A runner that keeps its tool cache would gather a venv per source change: those no job
      # used for a week go (a job touches its venv's marker at its start).
      find "$cache"/venv-* -maxdepth 1 -name .mlsteps-key -mtime +7 2> /dev/null \
        | while IFS= read -r marker; do
          old="${marker%/.mlsteps-key}"
          if private "$old"; then rm -rf "$old"; fi
        done
      exit 0
    fi
    why="the cached venv $entry could not be published"
  else
    why="uv failed: $(reason "$log")"
  fi
fi

# 4. pip, into this job's own venv.
echo "mlsteps: not using uv: $why; installing with pip"
[ ! -L "$venv" ] || rm -f "$venv"  # a link to a cached venv: pip installs into a venv of its own
echo "mlsteps: installing $spec into this job's venv $venv with pip (later mlsteps actions of the job reuse it)"
# A failed install leaves no venv at all when this step made it.
made_venv=false
[ -d "$venv" ] || made_venv=true
if ! { python3 -I -m venv "$venv" \
  && "$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check "$spec"; }; then
  if [ "$made_venv" = true ]; then
    rm -rf "$venv"
  fi
  fail 1 "mlsteps install failed" "mlsteps: pip could not install $spec into $venv (its messages are above)"
fi
published "$venv" "$extras"
