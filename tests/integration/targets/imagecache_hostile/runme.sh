#!/usr/bin/env bash
# A hostile `nova` user against imagecache_link (issue 13), on loop-mounted xfs and ext4: every row runs,
# a table shows each row PASS/FAIL with the reason, and the target fails if any row failed.
# IMAGECACHE_HOSTILE_ROWS=row,row runs only those rows (hostile_node.py ROWS).
set -euo pipefail
rows=()
if [[ -n "${IMAGECACHE_HOSTILE_ROWS:-}" ]]; then
    rows=(--rows "$IMAGECACHE_HOSTILE_ROWS")
fi
python3 hostile_node.py --work "$OUTPUT_DIR/hostile-node" "${rows[@]}"
