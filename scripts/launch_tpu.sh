#!/usr/bin/env bash
# Runs one experiment on every worker of a Cloud TPU VM (a single host or a pod slice).
#
#   scripts/launch_tpu.sh --name=cn-v4 --zone=us-central2-b --accelerator-type=v4-32 \
#     --bucket=gs://my-bucket --config=experiments/tfds_images.py:model=lstm,dataset=mnist \
#     [--workdir=gs://my-bucket/runs/x] [--version=RUNTIME] [--project=P] [--spot] [--queued] \
#     [--repo=https://github.com/me/comparenets.git [--ref=main]] [--dry-run] \
#     [-- --config.train.steps=5000 ...]
#   scripts/launch_tpu.sh --name=cn-v4 --zone=us-central2-b --accelerator-type=v4-32 \
#     --bucket=gs://my-bucket --suite=full [--workdir=gs://my-bucket/runs/full] [...]
#   scripts/launch_tpu.sh --name=cn-v4 --zone=us-central2-b --logs    # follow worker 0's log
#   scripts/launch_tpu.sh --name=cn-v4 --zone=us-central2-b --stop    # SIGTERM on every worker
#
# 1. finds the TPU VM and acts on its state: READY is reused; missing, it is created (with the
#    runtime for its type: v2/v3/v4 tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite, v5p
#    v2-alpha-tpuv5, v6e v2-alpha-tpuv6e; --version overrides); PREEMPTED or TERMINATED (a Spot
#    VM taken back) it is deleted and created again; any other error of `describe` (auth,
#    project, API) is shown and the script stops. --queued asks through a queued resource (what
#    Google advises for pod slices and Spot) and waits until it is ACTIVE;
# 2. ships the code: `git archive` of HEAD copied to every worker with `tpu-vm scp --worker=all`
#    (uncommitted changes are not shipped: commit them first), or with --repo a `git clone` of
#    that URL on every worker;
# 3. installs it on every worker: a Python 3.11 venv in ~/comparenets-venv (made by uv) with
#    `pip install -e .[gcs]` and jax[tpu] (libtpu from PyPI or the jax-releases index);
# 4. starts `python -m comparenets.main` detached on all workers (setsid nohup: a dropped ssh
#    connection does not stop it) with COMPARENETS_MULTIPROCESS=auto, so every worker joins
#    jax.distributed. Each worker logs to ~/comparenets.log, copied to WORKDIR/logs/ when the
#    job ends; one job per TPU VM at a time (the TPU chips belong to one process). The workdir
#    is on the bucket (default gs://BUCKET/comparenets/NAME/EXPERIMENT), which every worker
#    sees, and the same command resumes from its newest checkpoint.
#    With --suite=NAME instead of --config, every worker runs its own shard of the suite
#    instead: `python -m comparenets.compare --suite=NAME --workdir=WORKDIR --shard=I/N
#    --report_when_all_done`, I the worker's index and N the number of workers, both read on
#    the worker when the job starts (TPU_WORKER_ID and TPU_WORKER_HOSTNAMES where set, else the
#    GCE metadata server's agent-worker-number and worker-network-endpoints). Each worker is a
#    process of its own on its own host's chips (no jax.distributed; libtpu told so by
#    TPU_PROCESS_BOUNDS=1,1,1 and the host's chip bounds), and the last worker to finish writes
#    WORKDIR/REPORT.md (default workdir gs://BUCKET/comparenets/NAME/suite-NAME).
# --logs follows worker 0's log (process 0 is the one that logs). --stop sends SIGTERM to the job
# on every worker and waits for it to end: it saves a checkpoint and exits 0.
#
# --dry-run prints the commands, one per line, and runs nothing (the node's state is not known
# then: it prints the commands for a TPU VM that does not exist yet).
# Anything after `--` is passed to comparenets.main (e.g. --config.train.steps=5000).
set -euo pipefail

PROG=launch_tpu.sh
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# die, usage, split_flag
source "$ROOT/scripts/flags.sh"
JAX_SPEC='jax[tpu]>=0.10.2,<0.11'
LIBTPU_INDEX='https://storage.googleapis.com/jax-releases/libtpu_releases.html'
POLL_S="${COMPARENETS_TPU_POLL_S:-30}"  # seconds between two looks at a node being made

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

# "CHIPS BOUNDS" for one host of a multi-host slice of type $1, or "0 -" for a single-host one
# (its one worker has every chip anyway). Multi-host slices have 4 chips a host in every
# generation here: v2/v3-N and v4/v5p-N count TensorCores (2 a chip), v5e/v6e-N count chips (up
# to 8 on one host).
host_chips_of() {
  local n="${1##*-}" chips one_host
  case "${1%-*}" in
    v5litepod|v5e|v6e) chips="$n"; one_host=8 ;;
    *) chips=$((n / 2)); one_host=4 ;;
  esac
  if ((chips > one_host)); then
    echo "4 2,2,1"
  else
    echo "0 -"
  fi
}

# The TPU software version Google's "TPU software versions" page names for JAX on each
# generation (https://cloud.google.com/tpu/docs/runtimes).
runtime_for() {
  case "$1" in
    v2-*|v3-*|v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-*|v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) return 1 ;;
  esac
}

NAME='' ZONE='' ACCELERATOR='v4-8' VERSION='' BUCKET='' CONFIG='' SUITE='' WORKDIR=''
PROJECT='' REPO='' REF='' SPOT=0 QUEUED=0 DRY_RUN=0 ACTION=launch
EXTRA=()
while (($#)); do
  arg="$1"
  case "$arg" in
    --dry-run) DRY_RUN=1; shift; continue ;;
    --spot) SPOT=1; shift; continue ;;
    --queued) QUEUED=1; shift; continue ;;
    --logs) ACTION=logs; shift; continue ;;
    --stop) ACTION=stop; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *)
      split_flag "$@" || die "unexpected argument '$arg' (flags go before '--', comparenets flags after it)"
      key="$KEY" value="$VALUE"; shift "$TAKEN" ;;
  esac
  case "$key" in
    --name) NAME="$value" ;;
    --zone) ZONE="$value" ;;
    --accelerator-type) ACCELERATOR="$value" ;;
    --version) VERSION="$value"; [[ -n "$VERSION" ]] || die "--version must not be empty" ;;
    --bucket) BUCKET="$value" ;;
    --config) CONFIG="$value" ;;
    --suite) SUITE="$value" ;;
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

where=(--zone="$ZONE")
[[ -n "$PROJECT" ]] && where+=(--project="$PROJECT")
tpu=(gcloud compute tpus tpu-vm)
queued=(gcloud compute tpus queued-resources)
LOG='"$HOME/comparenets.log"'
PIDFILE='"$HOME/comparenets.pid"'

# Prints a command (--dry-run) or shows and runs it.
step() {
  if ((DRY_RUN)); then
    quote_all "$@"; echo
  else
    echo "+ $(quote_all "$@")" >&2
    "$@"
  fi
}

if [[ "$ACTION" != launch ]]; then
  if [[ "$ACTION" == logs ]]; then  # process 0 logs; worker 0 runs it
    step "${tpu[@]}" ssh "$NAME" "${where[@]}" --worker=0 --command="tail -n +1 -F $LOG"
  else  # every worker's job saves a checkpoint and exits 0; wait until each has
    stop="pid=\$(cat $PIDFILE 2>/dev/null) && kill -0 \"\$pid\" 2>/dev/null || "
    stop+="{ echo \"no comparenets job runs on \$(hostname)\"; exit 0; };"
    stop+=" kill -TERM \"\$pid\"; while kill -0 \"\$pid\" 2>/dev/null; do sleep 2; done;"
    stop+=" echo \"stopped on \$(hostname)\"; tail -n 3 $LOG"
    step "${tpu[@]}" ssh "$NAME" "${where[@]}" --worker=all --command="$stop"
  fi
  exit 0
fi

[[ "$ACCELERATOR" =~ ^v[0-9]+[a-z]*-[0-9]+$ ]] ||
  die "--accelerator-type=$ACCELERATOR is not a TPU type such as v4-8, v5litepod-16 or v6e-8"
if [[ -z "$VERSION" ]]; then
  VERSION="$(runtime_for "$ACCELERATOR")" ||
    die "no known TPU software version for --accelerator-type=$ACCELERATOR; give one with --version"
fi
if [[ -n "$SUITE" ]]; then
  [[ -z "$CONFIG" ]] || die "--suite and --config exclude each other: a suite names its experiments"
  ((${#EXTRA[@]} == 0)) ||
    die "--suite takes no comparenets.main flags after '--' (the suite file sets its overrides)"
  [[ "${SUITE%%:*}" =~ ^[A-Za-z0-9_.-]+$ ]] ||
    die "--suite=$SUITE must name a suite under experiments/suites/ (e.g. --suite=full)"
  EXPERIMENT="experiments/suites/${SUITE%%:*}.py"  # the file that must be shipped
else
  [[ -n "$CONFIG" ]] ||
    die "--config is required (e.g. experiments/digits.py:model=lstm), or --suite=NAME for a suite"
  EXPERIMENT="${CONFIG%%:*}"
  [[ "$EXPERIMENT" == experiments/*.py ]] ||
    die "--config=$CONFIG must name a file under experiments/ (e.g. experiments/digits.py:model=lstm)"
fi
[[ -n "$BUCKET" || -n "$WORKDIR" ]] || die "--bucket (gs://...) or --workdir (gs://...) is required"
if [[ -n "$BUCKET" ]]; then
  [[ "$BUCKET" =~ ^gs://[a-z0-9][-a-z0-9_.]*[a-z0-9](/.*)?$ ]] ||
    die "--bucket=$BUCKET is not a gs:// bucket"
fi
if [[ -z "$WORKDIR" && -n "$SUITE" ]]; then
  WORKDIR="${BUCKET%/}/comparenets/$NAME/suite-${SUITE//[^A-Za-z0-9._-]/_}"
elif [[ -z "$WORKDIR" ]]; then
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

if ((QUEUED)); then
  kind=queued-resources; field='value(state.state)'
  create=("${queued[@]}" create "$NAME" --node-id="$NAME" "${where[@]}"
          --accelerator-type="$ACCELERATOR" --runtime-version="$VERSION")
  delete=("${queued[@]}" delete "$NAME" "${where[@]}" --force --quiet)
else
  kind=tpu-vm; field='value(state)'
  create=("${tpu[@]}" create "$NAME" "${where[@]}" --accelerator-type="$ACCELERATOR"
          --version="$VERSION")
  delete=("${tpu[@]}" delete "$NAME" "${where[@]}" --quiet)
fi
((SPOT)) && create+=(--spot)
describe=(gcloud compute tpus "$kind" describe "$NAME" "${where[@]}" --format="$field")

# The node's (or queued resource's) state; NOT_FOUND when there is none. Any other failure of
# `describe` (not logged in, wrong project, API off) is shown as gcloud wrote it, and stops.
state_of() {
  local out err
  err="$(mktemp)"
  if out="$("${describe[@]}" 2>"$err")"; then
    rm -f "$err"; printf '%s' "${out:-UNKNOWN}"; return 0
  fi
  if grep -q 'NOT_FOUND' "$err"; then
    rm -f "$err"; printf NOT_FOUND; return 0
  fi
  cat "$err" >&2; rm -f "$err"
  echo "$PROG: error: \`$(quote_all "${describe[@]}")\` failed (above); nothing was created" >&2
  return 2
}

# Acts on the state: reuse, create, delete and create, or wait; returns when usable.
provision() {
  local state seen=''
  while :; do
    state="$(state_of)" || exit 2
    [[ "$state" != "$seen" ]] && echo "$PROG: TPU $NAME ($kind): $state" >&2
    seen="$state"
    case "$kind:$state" in
      tpu-vm:READY|queued-resources:ACTIVE) return 0 ;;
      *:NOT_FOUND) step "${create[@]}"; ((QUEUED)) || return 0 ;;
      tpu-vm:PREEMPTED|tpu-vm:TERMINATED|queued-resources:SUSPENDED)
        step "${delete[@]}"; step "${create[@]}"; ((QUEUED)) || return 0 ;;
      tpu-vm:CREATING|tpu-vm:STARTING|tpu-vm:RESTARTING|tpu-vm:REPAIRING|tpu-vm:REIMAGING) ;;
      queued-resources:ACCEPTED|queued-resources:CREATING|queued-resources:WAITING_FOR_RESOURCES) ;;
      queued-resources:PROVISIONING|queued-resources:SUSPENDING|queued-resources:DELETING) ;;
      tpu-vm:DELETING) ;;
      *) die "TPU $NAME is $state; see \`$(quote_all "${describe[@]:0:${#describe[@]}-1}")\`, delete it with \`$(quote_all "${delete[@]}")\` to start over" ;;
    esac
    sleep "$POLL_S"
  done
}

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
if [[ -z "$SUITE" ]]; then
  # one experiment over the whole slice: every worker joins jax.distributed
  run_args=(-m comparenets.main --config="$CONFIG" --workdir="$WORKDIR" "${EXTRA[@]}")
  start="COMPARENETS_MULTIPROCESS=auto $VENV/bin/python $(quote_all "${run_args[@]}")"
else
  # A suite: each worker a single-host process running its own shard, its index I and the
  # worker count N read on the worker (TPU_WORKER_ID / TPU_WORKER_HOSTNAMES where the image
  # sets them, else the GCE metadata server's agent-worker-number and worker-network-endpoints,
  # a comma-separated list of "?:?:IP" entries, one per worker).
  read -r host_chips chip_bounds <<<"$(host_chips_of "$ACCELERATOR")"
  md='http://metadata.google.internal/computeMetadata/v1/instance/attributes'
  ask="curl -sf -H \"Metadata-Flavor: Google\" $md"
  start="( i=\"\${TPU_WORKER_ID:-\$($ask/agent-worker-number)}\";"
  start+=" hosts=\"\${TPU_WORKER_HOSTNAMES:-\$($ask/worker-network-endpoints)}\";"
  start+=" n=\$(printf %s \"\$hosts\" | tr , \"\\n\" | grep -c .);"
  start+=" if ! [[ \"\$i\" =~ ^[0-9]+\$ ]] || ((n < 1 || i >= n)); then"
  start+=" echo \"comparenets: error: cannot tell the index of this worker (\$i) among \$n workers\" >&2; exit 2; fi;"
  if ((host_chips > 0)); then
    # A worker of a multi-host slice alone on its host's chips, not one process of the slice:
    # the variables that run one libtpu process on a subset of a TPU VM's chips (Skye
    # Wanderman-Milne's gist, gist.github.com/skye/f82ba45d2445bb19d53545538754f9a3; torch_xla's
    # single-process values, github.com/pytorch/xla/pull/4724; for one host out of a pod also
    # TPU_WORKER_HOSTNAMES=localhost and worker 0, github.com/pytorch/xla/issues/7714).
    # UNVERIFIED on a real slice: whether libtpu then still asks the metadata server for the
    # slice's topology (that issue also sets TPU_SKIP_MDS_QUERY=1, left out here: with it libtpu
    # may want the accelerator type and topology from the environment too).
    visible="$(seq -s, 0 $((host_chips - 1)))"
    start+=" export TPU_PROCESS_BOUNDS=1,1,1 TPU_CHIPS_PER_PROCESS_BOUNDS=$chip_bounds"
    start+=" TPU_VISIBLE_CHIPS=$visible CLOUD_TPU_TASK_ID=0 TPU_PROCESS_PORT=8476"
    start+=" TPU_PROCESS_ADDRESSES=localhost:8476 TPU_WORKER_HOSTNAMES=localhost TPU_WORKER_ID=0;"
  fi
  run_args=(-m comparenets.compare --suite="$SUITE" --workdir="$WORKDIR")
  start+=" exec $VENV/bin/python $(quote_all "${run_args[@]}") --shard=\"\$i/\$n\" --report_when_all_done )"
fi
# The job, detached: its own session (setsid), immune to the ssh session's hang-up (nohup), its
# pid in ~/comparenets.pid for --stop, its log copied to the bucket when it ends.
job="cd $CODE || exit 1; $start &"
job+=" echo \$! > $PIDFILE; wait \$!; rc=\$?; echo \"comparenets: exit status \$rc\";"
job+=" gcloud storage cp $LOG $(quote "${WORKDIR%/}/logs/")\"\$(hostname).log\" || true; exit \$rc"
run="if pid=\$(cat $PIDFILE 2>/dev/null) && kill -0 \"\$pid\" 2>/dev/null; then"
run+=" echo \"a comparenets job (pid \$pid) already runs on \$(hostname); --stop it first\" >&2;"
run+=" exit 1; fi; setsid nohup bash -c $(quote "$job") > $LOG 2>&1 < /dev/null &"
run+=" echo \"started on \$(hostname); log: ~/comparenets.log\""

if ((DRY_RUN)); then
  step "${describe[@]}"
  echo "# NOT_FOUND: create; READY/ACTIVE: reuse; PREEMPTED, TERMINATED or SUSPENDED: delete, then create"
  step "${create[@]}"
  ((QUEUED)) && echo "# then \`describe\` every ${POLL_S}s until ACTIVE"
else
  provision
fi
if [[ -n "$TARBALL" ]]; then
  step git -C "$ROOT" archive --format=tar.gz --output="$TARBALL" HEAD
  step "${tpu[@]}" scp "$TARBALL" "$NAME:comparenets.tar.gz" "${where[@]}" --worker=all
fi
step "${tpu[@]}" ssh "$NAME" "${where[@]}" --worker=all --command="$setup"
step "${tpu[@]}" ssh "$NAME" "${where[@]}" --worker=all --command="$run"
if ((!DRY_RUN)); then
  echo "$PROG: started; follow it with: $PROG --name=$NAME ${where[*]} --logs" >&2
  echo "$PROG: stop it (checkpoint saved) with: $PROG --name=$NAME ${where[*]} --stop" >&2
fi
