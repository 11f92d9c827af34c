#!/usr/bin/env bash
# osops.lifecycle.imagecache_rollout over SSH to the test nodes, as an operator runs it.
set -euxo pipefail
config=$(cd ../.. && pwd)/integration_config.yml
inventory=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes_inventory"])' "$config")
OS_CLIENT_CONFIG_FILE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["localcloud_clouds_yaml"])' "$config")
export OS_CLIENT_CONFIG_FILE
run() { ansible-playbook -i "$inventory" -e "@$config" "$@"; }
rollout() { run osops.lifecycle.imagecache_rollout -e @rollout-vars.yml "$@"; }

trap 'run cleanup.yml' EXIT
run setup.yml

# Check mode changes nothing on any node.
rollout --check
run verify.yml -e expect=nothing

rollout
run verify.yml -e expect=linked

# Idempotence: the second run changes nothing on any node.
rollout | tee "$OUTPUT_DIR/second-run.log"
test "$(grep -cE '^node[0-9]+ +: .*changed=0 ' "$OUTPUT_DIR/second-run.log")" -eq 3

# Prune: both images deleted in Glance; an instance on node1 uses the raw one.
run prune-setup.yml
rollout -e imagecache_prune=true
run verify.yml -e expect=pruned
