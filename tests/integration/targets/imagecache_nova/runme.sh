#!/usr/bin/env bash
# The image cache against a real Nova (issue 14): the local cloud's four libvirt/QEMU computes boot
# from base files imagecache_rollout linked, and Nova's image cache manager lives with them.
# Each row prints PASS/FAIL with the reason; the target fails if any row failed.
# IMAGECACHE_NOVA_ROWS=row,row runs only those rows (nova_cache.py ROWS; later rows use earlier ones').
set -euo pipefail
rows=()
if [[ -n "${IMAGECACHE_NOVA_ROWS:-}" ]]; then
    rows=(--rows "$IMAGECACHE_NOVA_ROWS")
fi
config=$(cd ../.. && pwd)/integration_config.yml
rc=0
python3 nova_cache.py --config "$config" --work "$OUTPUT_DIR/imagecache_nova" "${rows[@]}" || rc=$?
exit "$rc"
