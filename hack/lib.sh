# shellcheck shell=bash
# Shared by the hack/ scripts: where the development environment lives and how
# to enter it. Source it; it defines variables and functions only.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DEV_VENV=${OSOPS_DEV_VENV:-$REPO_ROOT/.venv}
# ansible-test and ansible need the checkout at .../ansible_collections/osops/lifecycle;
# hack/dev-env makes that path a symlink to this checkout, so nothing is copied.
COLLECTIONS_ROOT=$DEV_VENV/collections
COLLECTION_PATH=$COLLECTIONS_ROOT/ansible_collections/osops/lifecycle

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# Install the Debian packages named in the given files (one per line, # comments),
# skipping apt entirely when all are present already. Package scripts may not
# start services meanwhile (policy-rc.d): without systemd they would start a
# system MariaDB or RabbitMQ on the ports our own test services use.
ensure_apt_packages() {
    local missing=() pkg policy=/usr/sbin/policy-rc.d own_policy=0
    for pkg in $(sed -e 's/#.*//' "$@" | tr -s ' \n' '\n'); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && own_policy=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
    [ $rc -ne 0 ] || as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ "$own_policy" = 0 ] || as_root rm -f "$policy"
    [ $rc -eq 0 ] || die "apt-get failed (exit $rc) installing: ${missing[*]}"
}

# Put the development environment on PATH and point Ansible at the collection root.
enter_dev_env() {
    [ -x "$DEV_VENV/bin/python" ] || die "no development environment at $DEV_VENV: run hack/dev-env"
    export VIRTUAL_ENV=$DEV_VENV
    export PATH=$DEV_VENV/bin:$PATH
    export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS_ROOT
    # ansible-test resolves its working directory through symlinks; this keeps it
    # on the ansible_collections/osops/lifecycle path.
    export ANSIBLE_TEST_CONTENT_ROOT=$COLLECTION_PATH
    export PYTHONPATH=$COLLECTIONS_ROOT${PYTHONPATH:+:$PYTHONPATH}
    export ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-${CI:+1}}
    unset ANSIBLE_CONFIG
}

# ansible-test --venv re-runs itself from os.getcwd(), which resolves symlinks, so
# it needs a real .../ansible_collections/osops/lifecycle directory. Mirror the
# checkout's files (tracked and new, not ignored) into one and print its path.
# It lives outside the checkout: inside, ansible-test would find our .git above
# it and see no files.
ansible_test_tree() {
    local root dest ns
    root=${XDG_CACHE_HOME:-$HOME/.cache}/osops-lifecycle/ansible-test-$(printf %s "$REPO_ROOT" | sha256sum | cut -c1-12)
    dest=$root/ansible_collections/osops/lifecycle
    rm -rf "$dest" && mkdir -p "$dest"
    # (deleted but not yet staged files are listed by git and skipped here)
    (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf -) | tar -xf - -C "$dest"
    for ns in openstack community awx; do
        [ -e "$root/ansible_collections/$ns" ] || ln -s "$COLLECTIONS_ROOT/ansible_collections/$ns" "$root/ansible_collections/$ns"
    done
    echo "$dest"
}
