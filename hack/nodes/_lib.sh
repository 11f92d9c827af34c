# shellcheck shell=bash source-path=SCRIPTDIR disable=SC2034 # variables are for the scripts that source this
# Sourced by the hack/nodes commands: names, paths and per-node helpers.
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# set -e alone would exit without a word when a command fails quietly.
set -o errtrace
trap 'printf "ERROR: %s line %s: a command failed (exit status %s)\n" "${BASH_SOURCE[0]:-$0}" "$LINENO" "$?" >&2' ERR

NODES_HOME=${OSOPS_NODES_HOME:-$REPO_ROOT/.nodes}
# ssh -o values and the inventory are split on whitespace.
case $NODES_HOME in *[[:space:]]*) die "OSOPS_NODES_HOME must not contain whitespace: $NODES_HOME" ;; esac
RUN=$NODES_HOME/run             # per-node sshd config, pid file and log
KEYS=$NODES_HOME/ssh            # host key, client key, authorized_keys
NET=${OSOPS_NODES_NET:-10.77.0} # a /24 that exists only between host and nodes
[[ $NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "OSOPS_NODES_NET must be the first three octets of a /24, like 10.77.0"
BRIDGE=osops-br
HOST_IP=$NET.1

ns_of() { echo "osops-node$1"; }
veth_of() { echo "osops-v$1"; }     # host side; the node side is eth0
ip_of() { echo "$NET.$(($1 + 10))"; }

# Node numbers known from namespaces or state files, ascending.
known_nodes() {
    {
        ip netns list | sed -n 's/^osops-node\([0-9][0-9]*\)\( .*\)\{0,1\}$/\1/p'
        if [ -d "$RUN" ]; then
            find "$RUN" -name 'node*.sshd_config' | sed -n 's|.*/node\([0-9][0-9]*\)\.sshd_config$|\1|p'
        fi
    } | sort -nu
}

# PID of node $1's sshd if it is alive and really ours (the pid file may be stale).
sshd_pid() {
    local pid
    pid=$(cat "$RUN/node$1.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$RUN/node$1.sshd_config" \
        && echo "$pid"
}

ns_exists() { ip netns list | grep -q "^$(ns_of "$1")\( \|$\)"; }

node_ssh() { ssh -F "$NODES_HOME/ssh_config" -o ConnectTimeout=2 "$@"; }

# True if any of the PIDs runs. Zombies count as gone: PID 1 of a container may
# take a while to reap the daemons we started.
any_alive() {
    local pid
    for pid; do
        case $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null || true) in "" | Z*) ;; *) return 0 ;; esac
    done
    return 1
}

# Kill the processes in a list of PIDs: TERM, wait up to 2s, then KILL.
stop_pids() {
    [ $# -gt 0 ] || return 0
    kill "$@" 2>/dev/null || true
    local _
    for _ in $(seq 20); do
        any_alive "$@" || return 0
        sleep 0.1
    done
    kill -9 "$@" 2>/dev/null || true
}

# If node $1's namespace was deleted by hand while its sshd still runs, give the
# sshd's namespace the name back, so that it can be repaired or removed as usual.
reattach_ns() {
    local pid
    if ! ns_exists "$1" && pid=$(sshd_pid "$1"); then
        ip netns attach "$(ns_of "$1")" "$pid"
    fi
}

# Processes that hold node $1's sshd log open: its sshd and their sessions, even
# those left in a namespace deleted by hand, where "ip netns pids" cannot see.
log_holders() {
    { find /proc/[0-9]*/fd -lname "$RUN/node$1.log*" 2>/dev/null || true; } | cut -d/ -f3 | sort -u
}

# Stop node $1's sshd and every process left in its namespace (open ssh sessions,
# whose end also closes Ansible's ControlPersist masters), then remove its network.
remove_node() {
    local ns pid pids _
    ns=$(ns_of "$1")
    reattach_ns "$1"
    if pid=$(sshd_pid "$1"); then stop_pids "$pid"; fi
    pids=$(log_holders "$1")
    if ns_exists "$1"; then pids="$pids $(ip netns pids "$ns")"; fi
    # shellcheck disable=SC2086 # one PID per word
    stop_pids $pids
    # Let the FINs of killed sessions reach the host before the veth goes,
    # or ssh clients there (Ansible's ControlPersist) hang on to them.
    for _ in $(seq 10); do
        [ -n "$(ss -Htn state established dst "$(ip_of "$1")")" ] || break
        sleep 0.1
    done
    ! ns_exists "$1" || ip netns del "$ns"
    # Deleting the namespace destroys the veth pair, but not always at once.
    ip link del "$(veth_of "$1")" 2>/dev/null || true
    rm -f "$RUN/node$1".*
}

# Print the comment block at the top of the calling script as its help.
usage() { sed -n '2,/^set /p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# One up or down at a time per state dir.
lock_state() {
    exec 9>"$NODES_HOME/.lock"
    flock -w 60 9 || die "another hack/nodes command holds $NODES_HOME/.lock"
}
