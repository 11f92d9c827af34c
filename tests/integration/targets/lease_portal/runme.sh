#!/usr/bin/env bash
# shellcheck disable=SC2154  # config, conf, mailsink and state come from lease_cycle/env.sh
# The lease portal end to end: the lease_portal role deploys it, the lease cycle mails
# its signed links to a real SMTP server, and a real headless browser (chromium) opens
# the owner's link and extends a lease; tampered, replayed and prefetched links change nothing.
set -euo pipefail   # no -x: the signing key must not reach the log
. ../lease_cycle/env.sh
home=$OUTPUT_DIR/portal
port=8087
portal=http://127.0.0.1:$port
keyfile=$OUTPUT_DIR/portal-key.json

stop_portal() { if [ -f "$home/portal.pid" ]; then kill "$(cat "$home/portal.pid")" 2>/dev/null || true; fi; }
trap 'stop_portal; python3 ../lease_cycle/cycle.py cleanup "$state"' EXIT
"${mailsink[@]}" refuse --none
"${mailsink[@]}" clear

echo "== the estate (ann: s1 and v4 due for their 14-day notice, on two inventory hosts)"
python3 ../lease_cycle/cycle.py setup "$state"
# the shared signing key, in a file only root reads (never on a command line)
(umask 077; python3 -c 'import json, secrets; print(json.dumps({"portal_key": secrets.token_urlsafe(48)}))' > "$keyfile")
python3 -c 'import json, sys; k = json.load(open(sys.argv[1]))["portal_key"]; print(json.dumps({"lease_mail_portal_key": k}))' \
    "$keyfile" > "$OUTPUT_DIR/lease-portal-key.json"
chmod 600 "$OUTPUT_DIR/lease-portal-key.json"

echo "== deploy the portal with its role"
ansible-playbook deploy.yml -e "@$OUTPUT_DIR/cycle-vars.yml" -e "key_file=$keyfile" -e "portal_home=$home" \
    -e "portal_port=$port" -e "clouds_yaml=$OS_CLIENT_CONFIG_FILE"
if grep -rq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_key"])' "$keyfile")" \
        "$home/etc/clouds.yaml" "$home/osops-lease-portal.service"; then
    echo "the key leaked outside the portal's configuration"; exit 1
fi
test "$(stat -c %a "$home/etc/portal.json")" = 640
python3 browser.py serve "$home/osops-lease-portal.service" "$home/portal.pid"

echo "== the cycle mails links to the portal (no removal in this test)"
ansible-playbook -i "$OUTPUT_DIR/inventory.yml" -e "@$OUTPUT_DIR/cycle-vars.yml" -e "@$OUTPUT_DIR/lease-portal-key.json" \
    -e "lease_mail_portal_url=$portal" -e lease_reap_remove=false osops.lifecycle.lease_cycle > "$OUTPUT_DIR/cycle.log"
if grep -q "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_key"])' "$keyfile")" \
        "$OUTPUT_DIR/cycle.log"; then
    echo "the signing key appeared in the cycle's output"; exit 1
fi

echo "== the owner opens the link"
python3 browser.py check "$state" "$portal" "$home/log/audit.jsonl" \
    "$OUTPUT_DIR/lease-portal.png" "$(conf docs_images)/lease-portal.png"
