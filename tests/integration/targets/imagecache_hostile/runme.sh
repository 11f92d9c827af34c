#!/usr/bin/env bash
# A hostile `nova` user against imagecache_link (issue 13), on loop-mounted xfs and ext4: every row runs,
# a table shows each row PASS/FAIL with the reason, and the target fails if any row failed.
# IMAGECACHE_HOSTILE_ROWS=row,row runs only those rows (hostile_node.py ROWS).
set -euo pipefail
rows=()
if [[ -n "${IMAGECACHE_HOSTILE_ROWS:-}" ]]; then
    rows=(--rows "$IMAGECACHE_HOSTILE_ROWS")
fi
# the attacker (uid 65534) must reach the work directory: ansible-test's OUTPUT_DIR is under /root
work=$(mktemp -d /var/tmp/osops-imagecache-hostile.XXXXXX)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
rc=0
python3 hostile_node.py --work "$work/node" "${rows[@]}" || rc=$?
cp "$work/node/summary.json" "$OUTPUT_DIR/" 2>/dev/null || true   # the table, kept with the test output
exit "$rc"
