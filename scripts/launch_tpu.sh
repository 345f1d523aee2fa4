#!/usr/bin/env bash
# Runs one experiment on every worker of a Cloud TPU VM (a single host or a pod slice).
#
#   scripts/launch_tpu.sh --name=cn-v4 --zone=us-central2-b --accelerator-type=v4-32 \
#     --bucket=gs://my-bucket --config=experiments/tfds_images.py:model=lstm,dataset=mnist \
#     [--workdir=gs://my-bucket/runs/x] [--version=tpu-ubuntu2204-base] [--project=P] [--spot] \
#     [--repo=https://github.com/me/comparenets.git [--ref=main]] [--dry-run] \
#     [-- --config.train.steps=5000 ...]
#
# 1. creates the TPU VM, or reuses it when `describe` finds it;
# 2. ships the code: `git archive` of HEAD copied to every worker with `tpu-vm scp --worker=all`
#    (uncommitted changes are not shipped: commit them first), or with --repo a `git clone` of
#    that URL on every worker;
# 3. installs it on every worker: a Python 3.11 venv in ~/comparenets-venv (made by uv) with
#    `pip install -e .[gcs]` and jax[tpu] (libtpu from PyPI or the jax-releases index);
# 4. runs `python -m comparenets.main` on all workers at once (`ssh --worker=all`) with
#    COMPARENETS_MULTIPROCESS=auto, so every worker joins jax.distributed; the workdir is on the
#    bucket (default gs://BUCKET/comparenets/NAME/EXPERIMENT), which every worker sees, and the
#    same command resumes from its newest checkpoint.
#
# --dry-run prints the exact commands, one per line, as bash would run them, and runs nothing.
# Anything after `--` is passed to comparenets.main (e.g. --config.train.steps=5000).
set -euo pipefail

PROG=launch_tpu.sh
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JAX_SPEC='jax[tpu]>=0.10.2,<0.11'
LIBTPU_INDEX='https://storage.googleapis.com/jax-releases/libtpu_releases.html'

die() { echo "$PROG: error: $*" >&2; exit 2; }

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# One shell word for $1: bare when it is plainly safe, else single-quoted.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_all() {
  local out='' word
  for word in "$@"; do out+="${out:+ }$(quote "$word")"; done
  printf '%s' "$out"
}

NAME='' ZONE='' ACCELERATOR='v4-8' VERSION='tpu-ubuntu2204-base' BUCKET='' CONFIG='' WORKDIR=''
PROJECT='' REPO='' REF='' SPOT=0 DRY_RUN=0
EXTRA=()
while (($#)); do
  arg="$1"
  case "$arg" in
    --dry-run) DRY_RUN=1; shift; continue ;;
    --spot) SPOT=1; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    --*=*) key="${arg%%=*}"; value="${arg#*=}"; shift ;;
    --*)
      key="$arg"
      (($# >= 2)) && [[ "$2" != --* ]] || die "$key needs a value"
      value="$2"; shift 2 ;;
    *) die "unexpected argument '$arg' (flags go before '--', comparenets flags after it)" ;;
  esac
  case "$key" in
    --name) NAME="$value" ;;
    --zone) ZONE="$value" ;;
    --accelerator-type) ACCELERATOR="$value" ;;
    --version) VERSION="$value" ;;
    --bucket) BUCKET="$value" ;;
    --config) CONFIG="$value" ;;
    --workdir) WORKDIR="$value" ;;
    --project) PROJECT="$value" ;;
    --repo) REPO="$value" ;;
    --ref) REF="$value" ;;
    *) die "unknown flag $key (see --help)" ;;
  esac
done

[[ -n "$NAME" ]] || die "--name is required (the TPU VM to create or reuse)"
[[ "$NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
  die "--name=$NAME is not a valid TPU name (lower-case letters, digits and '-', starting with a letter)"
[[ -n "$ZONE" ]] || die "--zone is required (e.g. us-central2-b)"
[[ "$ZONE" =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || die "--zone=$ZONE is not a zone such as us-central2-b"
[[ "$ACCELERATOR" =~ ^v[0-9]+[a-z]*-[0-9]+$ ]] ||
  die "--accelerator-type=$ACCELERATOR is not a TPU type such as v4-8, v5litepod-16 or v6e-8"
[[ -n "$VERSION" ]] || die "--version must not be empty"
[[ -n "$CONFIG" ]] || die "--config is required (e.g. experiments/digits.py:model=lstm)"
EXPERIMENT="${CONFIG%%:*}"
[[ "$EXPERIMENT" == experiments/*.py ]] ||
  die "--config=$CONFIG must name a file under experiments/ (e.g. experiments/digits.py:model=lstm)"
[[ -n "$BUCKET" || -n "$WORKDIR" ]] || die "--bucket (gs://...) or --workdir (gs://...) is required"
if [[ -n "$BUCKET" ]]; then
  [[ "$BUCKET" =~ ^gs://[a-z0-9][-a-z0-9_.]*[a-z0-9](/.*)?$ ]] ||
    die "--bucket=$BUCKET is not a gs:// bucket"
fi
if [[ -z "$WORKDIR" ]]; then
  stem="$(basename "$EXPERIMENT" .py)"
  arg_part="${CONFIG#"$EXPERIMENT"}"; arg_part="${arg_part#:}"
  [[ -n "$arg_part" ]] && stem+="-${arg_part//[^A-Za-z0-9._-]/_}"
  WORKDIR="${BUCKET%/}/comparenets/$NAME/$stem"
fi
[[ "$WORKDIR" == gs://?* ]] ||
  die "--workdir=$WORKDIR must be on a gs:// bucket: every worker writes there"
[[ -z "$REF" || -n "$REPO" ]] || die "--ref needs --repo"

TARBALL=''
if [[ -z "$REPO" ]]; then
  git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null ||
    die "$ROOT is not a git checkout with a commit; ship the code with --repo=URL instead"
  git -C "$ROOT" cat-file -e "HEAD:$EXPERIMENT" 2>/dev/null ||
    die "$EXPERIMENT is not in the committed code (HEAD) that would be shipped"
  if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]]; then
    echo "$PROG: warning: uncommitted changes are not shipped (git archive of HEAD)" >&2
  fi
  TARBALL="${TMPDIR:-/tmp}/comparenets-$(git -C "$ROOT" rev-parse --short=12 HEAD).tar.gz"
fi

where=(--zone="$ZONE")
[[ -n "$PROJECT" ]] && where+=(--project="$PROJECT")
tpu=(gcloud compute tpus tpu-vm)

describe=("${tpu[@]}" describe "$NAME" "${where[@]}" --format='value(state)')
create=("${tpu[@]}" create "$NAME" "${where[@]}" --accelerator-type="$ACCELERATOR"
        --version="$VERSION")
((SPOT)) && create+=(--spot)

# What every worker runs (through its login shell: $HOME expands there).
CODE='"$HOME/comparenets"'
VENV='"$HOME/comparenets-venv"'
if [[ -n "$REPO" ]]; then
  fetch="rm -rf $CODE && git clone -q $(quote "$REPO") $CODE"
  [[ -n "$REF" ]] && fetch+=" && git -C $CODE checkout -q $(quote "$REF")"
else
  fetch="rm -rf $CODE && mkdir -p $CODE && tar -xzf \"\$HOME/comparenets.tar.gz\" -C $CODE"
fi
# The TPU images ship Python 3.10 and comparenets needs 3.11+: uv fetches a Python 3.11 for the
# venv (the workers reach the internet; the laptop running this script needs only gcloud).
UV='"$HOME/.local/bin/uv"'
setup="set -e; $fetch; python3 -m pip install -q --user -U uv;"
setup+=" $UV venv -q --allow-existing --python 3.11 $VENV;"
setup+=" $UV pip install -q --python $VENV/bin/python -e \"\$HOME/comparenets[gcs]\""
setup+=" $(quote "$JAX_SPEC") -f $LIBTPU_INDEX"
run_args=(-m comparenets.main --config="$CONFIG" --workdir="$WORKDIR" "${EXTRA[@]}")
run="cd $CODE && COMPARENETS_MULTIPROCESS=auto $VENV/bin/python $(quote_all "${run_args[@]}")"

commands=("$(quote_all "${describe[@]}") >/dev/null 2>&1 || $(quote_all "${create[@]}")")
if [[ -n "$TARBALL" ]]; then
  commands+=("$(quote_all git -C "$ROOT" archive --format=tar.gz --output="$TARBALL" HEAD)")
  commands+=("$(quote_all "${tpu[@]}" scp "$TARBALL" "$NAME:comparenets.tar.gz" "${where[@]}" \
                --worker=all)")
fi
commands+=("$(quote_all "${tpu[@]}" ssh "$NAME" "${where[@]}" --worker=all --command="$setup")")
commands+=("$(quote_all "${tpu[@]}" ssh "$NAME" "${where[@]}" --worker=all --command="$run")")

if ((DRY_RUN)); then
  printf '%s\n' "${commands[@]}"
  exit 0
fi
for command in "${commands[@]}"; do
  echo "+ $command" >&2
  bash -c "set -euo pipefail; $command"
done
