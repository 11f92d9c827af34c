# shellcheck shell=bash
# Sourced by the hack/localcloud commands: locate the state dir and a python.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# libvirt mode has a state dir of its own (its nodes and instances are real; the
# fake driver's must not meet them), sharing the services' virtualenv
if [ "${OSOPS_LOCALCLOUD_HYPERVISOR:-fake}" = libvirt ]; then
  export OSOPS_LOCALCLOUD_HOME=${OSOPS_LOCALCLOUD_HOME:-$REPO/.localcloud-libvirt}
else
  export OSOPS_LOCALCLOUD_HOME=${OSOPS_LOCALCLOUD_HOME:-$REPO/.localcloud}
fi
LC_PY=$OSOPS_LOCALCLOUD_HOME/venv/bin/python
if [ ! -x "$LC_PY" ]; then
  LC_PY=python3   # stop/status work without the venv (stdlib only)
fi
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
