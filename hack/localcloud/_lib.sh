# shellcheck shell=bash
# Sourced by the hack/localcloud commands: locate the state dir and a python.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export OSOPS_LOCALCLOUD_HOME=${OSOPS_LOCALCLOUD_HOME:-$REPO/.localcloud}
LC_PY=$OSOPS_LOCALCLOUD_HOME/venv/bin/python
if [ ! -x "$LC_PY" ]; then
  LC_PY=python3   # stop/status work without the venv (stdlib only)
fi
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
