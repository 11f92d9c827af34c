#!/usr/bin/env bash
# The lease reaper's soft actions on real guests (issue 14): stop, shelve (offloaded) and lock with
# lease_reap, checked in Nova and in libvirt; the owner is held until an extension unlocks.
# Each row prints PASS/FAIL with the reason; the target fails if any row failed.
# LEASE_SOFT_ROWS=row,row runs only those rows (soft_actions.py ROWS; later rows use earlier ones').
set -euo pipefail
rows=()
if [[ -n "${LEASE_SOFT_ROWS:-}" ]]; then
    rows=(--rows "$LEASE_SOFT_ROWS")
fi
config=$(cd ../.. && pwd)/integration_config.yml
python3 soft_actions.py --config "$config" --work "$OUTPUT_DIR/lease_soft_actions" "${rows[@]}"
