#!/usr/bin/env bash
# shellcheck disable=SC2154  # config, conf, mailsink and state come from lease_cycle/env.sh
# The lease portal end to end: the lease_portal role deploys it behind Debian's nginx with TLS
# (exactly the server block docs/portal.md documents), the lease cycle mails its signed links to a
# real SMTP server, and a real headless browser (chromium) opens the owner's link over https: the
# owner's page with all of their resources, extending two at once, releasing one, and the refusals;
# tampered, replayed, expired and prefetched links change nothing.
set -euo pipefail   # no -x: the signing key must not reach the log
. ../lease_cycle/env.sh
home=$OUTPUT_DIR/portal
port=8087
proxy=$OUTPUT_DIR/nginx
tls_port=8443
portal=https://localhost:$tls_port
keyfile=$OUTPUT_DIR/portal-key.json
docs=$(dirname "$(conf docs_images)")/portal.md

stop_portal() { if [ -f "$home/portal.pid" ]; then kill "$(cat "$home/portal.pid")" 2>/dev/null || true; fi; }
stop_proxy() { if [ -f "$proxy/nginx.pid" ]; then kill "$(cat "$proxy/nginx.pid")" 2>/dev/null || true; fi; }
trap 'stop_proxy; stop_portal; python3 estate.py cleanup "$state"; python3 ../lease_cycle/cycle.py cleanup "$state"' EXIT
"${mailsink[@]}" refuse --none
"${mailsink[@]}" clear

echo "== the estate (ann: s1 and v4 due for their 14-day notice, on two inventory hosts; more of ann's resources)"
python3 ../lease_cycle/cycle.py setup "$state"
python3 estate.py setup "$state"
# the shared signing key, in a file only root reads (never on a command line)
(umask 077; python3 -c 'import json, secrets; print(json.dumps({"portal_key": secrets.token_urlsafe(48)}))' > "$keyfile")
python3 -c 'import json, sys; k = json.load(open(sys.argv[1]))["portal_key"]; print(json.dumps({"lease_mail_portal_key": k}))' \
    "$keyfile" > "$OUTPUT_DIR/lease-portal-key.json"
chmod 600 "$OUTPUT_DIR/lease-portal-key.json"

echo "== deploy the portal with its role (secure cookies, as behind TLS in production)"
ansible-playbook deploy.yml -e "@$OUTPUT_DIR/cycle-vars.yml" -e "key_file=$keyfile" -e "portal_home=$home" \
    -e "portal_port=$port" -e "clouds_yaml=$OS_CLIENT_CONFIG_FILE"
if grep -rq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_key"])' "$keyfile")" \
        "$home/etc/clouds.yaml" "$home/osops-lease-portal.service"; then
    echo "the key leaked outside the portal's configuration"; exit 1
fi
test "$(stat -c %a "$home/etc/portal.json")" = 640
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["secure_cookies"] is True, "secure cookies"' \
    "$home/etc/portal.json"
python3 browser.py serve "$home/osops-lease-portal.service" "$home/portal.pid"

echo "== nginx with TLS in front of it: the server block of docs/portal.md, a throwaway certificate"
mkdir -p "$proxy"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$proxy/portal.key" -out "$proxy/portal.pem" 2>/dev/null
python3 proxy.py conf "$docs" "$proxy" --name localhost --cert "$proxy/portal.pem" --key "$proxy/portal.key" \
    --listen "127.0.0.1:$tls_port" --upstream "$port"
nginx -t -q -c "$proxy/nginx.conf" -p "$proxy/" -e "$proxy/error.log"
nginx -c "$proxy/nginx.conf" -p "$proxy/" -e "$proxy/error.log"
python3 proxy.py wait "$portal/healthz" "$proxy/portal.pem"

echo "== the cycle mails links to the portal (no removal in this test)"
ansible-playbook -i "$OUTPUT_DIR/inventory.yml" -e "@$OUTPUT_DIR/cycle-vars.yml" -e "@$OUTPUT_DIR/lease-portal-key.json" \
    -e "lease_mail_portal_url=$portal" -e lease_reap_remove=false osops.lifecycle.lease_cycle > "$OUTPUT_DIR/cycle.log"
if grep -q "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_key"])' "$keyfile")" \
        "$OUTPUT_DIR/cycle.log"; then
    echo "the signing key appeared in the cycle's output"; exit 1
fi

echo "== the owner opens the link (through nginx, https)"
images=$(conf docs_images)
python3 browser.py check "$state" "$portal" "$home/log/audit.jsonl" "$keyfile" "$proxy/portal.pem" \
    "http://127.0.0.1:$port" "$OUTPUT_DIR" "$images"
if grep -q "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_key"])' "$keyfile")" \
        "$home/portal.pid.log" "$proxy/error.log" "$proxy/access.log" "$home/log/audit.jsonl"; then
    echo "the signing key appeared in a log"; exit 1
fi
