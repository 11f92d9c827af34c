#!/usr/bin/env bash
# The shipped rulebooks, run by ansible-rulebook against the local cloud and the SSH test nodes: each row
# prints PASS/FAIL with its reason; the target fails if any row failed. EDA_ROWS=row,row runs only those rows.
set -euo pipefail
rows=()
if [[ -n "${EDA_ROWS:-}" ]]; then
    rows=(--rows "$EDA_ROWS")
fi
config=$(cd ../.. && pwd)/integration_config.yml
python3 rulebooks.py --config "$config" "${rows[@]}"
