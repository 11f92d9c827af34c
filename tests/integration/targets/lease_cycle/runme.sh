#!/usr/bin/env bash
# shellcheck disable=SC2154  # config, conf, mailsink and state come from lease_cycle/env.sh
# The lease lifecycle end to end, as an operator runs it: the playbooks against the
# local cloud, mail delivered to a real SMTP server on loopback, time moved forward
# day by day through every milestone to removal (cycle.py shift).
set -euxo pipefail
. ./env.sh
vars=$OUTPUT_DIR/cycle-vars.yml
inventory=$OUTPUT_DIR/inventory.yml

trap 'python3 cycle.py cleanup "$state"; "${mailsink[@]}" refuse --none' EXIT
"${mailsink[@]}" refuse --none
"${mailsink[@]}" clear   # the checks count what arrives from here on
python3 cycle.py setup "$state"
check() { python3 cycle.py expect "$state" "$1"; }
# removal on, as after the first-day checklist (docs/operating.md); without it the cycle is a dry run
cycle() { ansible-playbook -i "$inventory" -e "@$vars" -e lease_reap_remove=true osops.lifecycle.lease_cycle "$@"; }
# a run that must end red (the report is still written)
cycle_fails() { if cycle "$@"; then echo "the cycle should have failed"; exit 1; fi; }
resource_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"][sys.argv[2]]["id"])' "$state" "$1"; }
user_email() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["users"][sys.argv[2]]["email"])' "$state" "$1"; }
user_name() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["users"][sys.argv[2]]["name"])' "$state" "$1"; }

# The mail server is down: nobody is told, no notice is recorded, the run ends red.
cycle_fails -e lease_smtp_port=1
check smtp-down

# rex's address is refused: ann (both clouds in one mail) and the project contact are told, rex is not.
"${mailsink[@]}" refuse "$(user_email rex)"
cycle_fails
check first

# A re-run sends nothing twice (rex is still refused, so still red).
cycle_fails
check rerun
"${mailsink[@]}" refuse --none

# A week ahead with lease_as_of: a preview that mails nobody and removes nothing.
cycle -e "lease_as_of=$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%SZ)"
check preview

# lease_extend as AWX launches it (the AWX user name is the Keystone user's): the owner extends her own volume (counted) ...
extend() { ansible-playbook -e "@$vars" -e lease_hosts=localhost osops.lifecycle.lease_extend "$@"; }
extend -e lease_extend_kind=volume -e "lease_extend_resource=$(resource_id v1)" -e lease_extend_days=5 \
    -e "awx_user_email=$(user_email ann)" -e "awx_user_name=$(user_name ann)"
check extend
# ... but not rex's server, and the refusal names no one else's address
if extend -e lease_extend_kind=server -e "lease_extend_resource=$(resource_id s2)" -e lease_extend_days=5 \
    -e "awx_user_email=$(user_email ann)" -e "awx_user_name=$(user_name ann)" | tee "$OUTPUT_DIR/refused.log"; then
    echo "ann extended rex's server"; exit 1
fi
grep -q "not a resource of user $(user_name ann)" "$OUTPUT_DIR/refused.log"
if grep -q "$(user_email rex)" "$OUTPUT_DIR/refused.log"; then echo "the refusal named rex"; exit 1; fi
# ... an operator may (not counted against the owner's extensions)
extend -e lease_extend_kind=volume -e "lease_extend_resource=$(resource_id v1)" -e lease_extend_days=5 \
    -e awx_user_email=boss@example.org -e awx_user_name=boss -e '{"lease_operators": ["boss"]}'
check extend

# A week later: the 7-day notices, rex told at last (expired, so notice first), v2 removed after its notice.
python3 cycle.py shift "$state" 7
# First the ad hoc reap, a dry run unless asked: it lists v2 and removes nothing.
ansible-playbook -i "$inventory" -e "@$vars" osops.lifecycle.reap | tee "$OUTPUT_DIR/reap-dry.log"
grep -q "Dry run: nothing is removed" "$OUTPUT_DIR/reap-dry.log"
grep -q "lab-a: would remove 1: volume $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"]["v2"]["name"])' "$state")" "$OUTPUT_DIR/reap-dry.log"
check dry-reap
cycle
check week1

# Six days later: the 1-day notices; rex's server goes, a day after he was told. This run is an AWX
# workflow with a sliced scan: each slice scans one cloud (lease_scan), AWX hands their set_stats
# artifacts to lease_cycle, which still mails ann once for both clouds.
python3 cycle.py shift "$state" 6
for slice in lab-a lab-b; do
    ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ANSIBLE_SHOW_CUSTOM_STATS=true ansible-playbook -i "$inventory" -e "@$vars" --limit "$slice" \
        osops.lifecycle.lease_scan > "$OUTPUT_DIR/slice-$slice.json"
done
python3 -c 'import json, sys
merged = {}
for path in sys.argv[1:]:
    merged.update(json.load(open(path))["global_custom_stats"]["lease_scans"])
print(json.dumps({"lease_scans": merged}))' "$OUTPUT_DIR/slice-lab-a.json" "$OUTPUT_DIR/slice-lab-b.json" > "$OUTPUT_DIR/artifacts.json"
cycle -e "@$OUTPUT_DIR/artifacts.json"
check week2

# A day later: ann's server and volume (two clouds) go, and she gets one removal mail.
python3 cycle.py shift "$state" 1
cycle
check expired

# Nothing left to do: no mail, no removal; the exempt server and the nobody's volume stay.
cycle
check final
