# Sourced by the launch scripts (launch_tpu.sh, launch_slurm.sh, run_suite_per_device.sh): their
# error line, their --help and the splitting of their flags. The sourcing script sets PROG.

die() { echo "${PROG:-${0##*/}}: error: $*" >&2; exit 2; }

# The sourcing script's header comment (from line 2 to `set -euo pipefail`) as its --help.
usage() {
  local script="${BASH_SOURCE[1]}"  # the script whose body called usage
  sed -n '2,/^set /{/^#/p}' "$script" | sed 's/^# \{0,1\}//'
}

# split_flag ARGS...: the flag at the front of ARGS, as --key=value or --key value, in KEY and
# VALUE; TAKEN is how many arguments it used (the caller shifts them). Returns 1 when ARGS does
# not start with a flag; a flag without its value is an error.
split_flag() {
  case "$1" in
    --*=*) KEY="${1%%=*}"; VALUE="${1#*=}"; TAKEN=1 ;;
    --*)
      KEY="$1"
      (($# >= 2)) && [[ "$2" != --* ]] || die "$KEY needs a value"
      VALUE="$2"; TAKEN=2 ;;
    *) return 1 ;;
  esac
}
