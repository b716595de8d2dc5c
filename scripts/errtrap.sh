# shellcheck shell=bash
# Sourced by the setup and test scripts: a command that fails ends the script with a message that
# names the script, the step, the line and the command, instead of a silent exit under set -e.
#
#   . "$(dirname "$0")/errtrap.sh"
#   qv_step "building FAISS"        # what the script is doing now (said on failure)
set -Eeuo pipefail
qv__step="starting"
qv__hint=""
qv_step() { qv__step=$1; qv__hint=${2:-}; }
qv__on_err() {
  local rc=$1 line=$2 cmd=$3
  # With set -E the trap also runs in subshells; say it once, from the script's own shell.
  [ "$BASH_SUBSHELL" = 0 ] || return 0
  {
    echo "$(basename "$0"): FAILED while $qv__step (line $line, exit $rc): $cmd"
    [ -z "$qv__hint" ] || echo "$(basename "$0"): $qv__hint"
  } >&2
}
trap 'qv__on_err $? $LINENO "$BASH_COMMAND"' ERR
# qv_die MESSAGE: end the script now, naming the step.
qv_die() {
  echo "$(basename "$0"): FAILED while $qv__step: $*" >&2
  [ -z "$qv__hint" ] || echo "$(basename "$0"): $qv__hint" >&2
  exit 1
}
