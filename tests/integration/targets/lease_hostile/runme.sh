#!/usr/bin/env bash
# shellcheck disable=SC2154  # config, conf, mailsink and state come from lease_cycle/env.sh
# Hostile tenants against the lease lifecycle (issue 12), as an attacker with an ordinary project
# membership would try it, on the local cloud with mail to a real SMTP server. Every step runs even
# when an earlier one failed, so one run shows every broken promise; the target fails at the end.
# LEASE_HOSTILE_ROWS=row,row plants only those rows (hostile.py ROWS), to see one attack at a time.
set -euxo pipefail   # no secret is ever on a command line: they are in files (0600) under $OUTPUT_DIR
. ../lease_cycle/env.sh
vars=$OUTPUT_DIR/hostile-vars.yml

trap 'python3 hostile.py cleanup "$state"; "${mailsink[@]}" refuse --none' EXIT
"${mailsink[@]}" refuse --none
"${mailsink[@]}" clear   # the checks count what arrives from here on
python3 hostile.py setup "$state"
failed=()
check() { python3 hostile.py expect "$state" "$1" || failed+=("$1"); }
field() { python3 hostile.py field "$state" "$1"; }
# the cycle as operators schedule it; whether it ends red is not the point here, the checks are
cycle() { ansible-playbook -e "@$vars" osops.lifecycle.lease_cycle "$@" || echo "lease_cycle exited $?" >&2; }
# the same, its results (every lease_reap decision) kept as JSON in $OUTPUT_DIR/$1.json for the checks
cycle_json() {
    local name=$1; shift
    ANSIBLE_STDOUT_CALLBACK=ansible.posix.json cycle "$@" > "$OUTPUT_DIR/$name.json"
}
extend() { ansible-playbook -e "@$vars" -e lease_hosts=localhost osops.lifecycle.lease_extend "$@"; }

echo "== 1. The first run with a seal key (migration mode) takes over the old leases and seals them"
echo "==    (7. nothing lost: expiry, notice, count; an owner told at 7 days by the old version is not told again)"
cycle_json migrate -e "@$OUTPUT_DIR/vars-all-projects.json"
check migrate
python3 hostile.py enforce "$state"   # from now on, lease keys without a valid seal are tampering

echo "== 2. Two days pass; an operator sets an owner override; the attacker plants the hostile values"
python3 hostile.py shift "$state"   # two days; before planting, as shifting re-seals what it finds
OSOPS_LEASE_SEAL_KEY_FILE=$OUTPUT_DIR/seal.key ansible localhost -m osops.lifecycle.resource_lease \
    -a "cloud=admin kind=volume resource=$(field resources.g-team.id) owner=$(field addresses.team)"
python3 hostile.py plant "$state"

echo "== 3. The cycle: the honest project is served, each attack is reported and buys nothing"
cycle_json hostile-run
check tenants

echo "== 4. In use anywhere: the shared image, expired and its owner told, is booted in another project"
cycle_json inuse-kinds -e "@$OUTPUT_DIR/vars-inuse-kinds.json"
cycle_json inuse-projects -e "@$OUTPUT_DIR/vars-inuse-projects.json"
check in-use

echo "== 5. AWX identity: mal launches lease_extend with vic's e-mail as his AWX address"
python3 hostile.py awx-before "$state"
if extend -e awx_job_id=101 -e "awx_user_name=$(field users.mal.name)" -e "awx_user_email=$(field users.vic.email)" \
        -e lease_extend_kind=volume -e "lease_extend_resource=$(field resources.v-vic.id)" -e lease_extend_days=5; then
    echo "FAIL  mal's launch on vic's volume was not refused"; failed+=(awx-refused)
fi
check awx
# vic herself, whatever her AWX e-mail says, may (the AWX user name decides)
extend -e awx_job_id=102 -e "awx_user_name=$(field users.vic.name)" -e "awx_user_email=attacker@evil.example" \
    -e lease_extend_kind=volume -e "lease_extend_resource=$(field resources.v-vic.id)" -e lease_extend_days=5 \
    || echo "lease_extend exited $?"
check awx-owner

echo "== 6. No secret in output: the cycle at -vvv with the cloud as a dict with a password, an SMTP password, the seal key"
ansible-playbook -vvv -e "@$vars" -e "@$OUTPUT_DIR/vars-secret.json" osops.lifecycle.lease_cycle \
    > "$OUTPUT_DIR/vvv.log" 2>&1 || echo "lease_cycle -vvv exited $?"
check secrets

echo "== 8. No usable key (missing, too short, readable by all): the run fails saying so, writes nothing, mails nobody"
python3 hostile.py bad-keys "$state"   # gina asks for more time on g-8: a run that writes would grant it
for key in missing short open; do
    cycle_json "key-$key" -e "@$OUTPUT_DIR/vars-key-$key.json"
    check "key-$key"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "lease_hostile: failed steps: ${failed[*]}"
    exit 1
fi
