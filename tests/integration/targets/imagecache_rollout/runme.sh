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
run cleanup.yml   # what an interrupted earlier run left (same image names, same node directories)
run setup.yml

# Check mode changes nothing on any node.
rollout --check
run verify.yml -e expect=nothing

rollout
run verify.yml -e expect=linked

# Idempotence: the second run changes nothing on any node.
rollout | tee "$OUTPUT_DIR/second-run.log"
test "$(grep -cE '^node[0-9]+ +: .*changed=0 ' "$OUTPUT_DIR/second-run.log")" -eq 3

# touch off while nova.conf keeps Nova's cleanup on: every node warns.
rollout -e imagecache_touch=false | tee "$OUTPUT_DIR/no-touch.log"
test "$(grep -c 'WARNING: imagecache_touch is off' "$OUTPUT_DIR/no-touch.log")" -eq 3

# One _base shared by all nodes: linked once, by the first node only.
shared="$OUTPUT_DIR/shared/instances"
mkdir -p "$shared/_base"
rollout -e imagecache_shared_base=true -e "imagecache_cache_dir=$shared/_base" \
    -e "imagecache_instances_dir=$shared" -e "imagecache_state_file=$OUTPUT_DIR/shared/state.json" \
    | tee "$OUTPUT_DIR/shared.log"
linked=$(grep -o 'TOTAL (1 node): linked [0-9]*' "$OUTPUT_DIR/shared.log" | grep -o '[0-9]*$')
test "$linked" -ge 2   # at least our raw and ISO images (the cloud may hold more)
test "$(find "$shared/_base" -maxdepth 1 -type f | wc -l)" -eq "$linked"

# Prune: both images deleted in Glance; an instance on node1 uses the raw one.
run prune-setup.yml
rollout -e imagecache_prune=true
run verify.yml -e expect=pruned
