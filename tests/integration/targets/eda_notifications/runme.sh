#!/usr/bin/env bash
# The event source plugin (extensions/eda/plugins/event_source/openstack_notifications.py) against
# the local cloud: each row prints PASS/FAIL with its reason; the target fails if any row failed.
# EDA_ROWS=row,row runs only those rows (notifications.py ROWS).
set -euo pipefail
rows=()
if [[ -n "${EDA_ROWS:-}" ]]; then
    rows=(--rows "$EDA_ROWS")
fi
config=$(cd ../.. && pwd)/integration_config.yml
python3 notifications.py --config "$config" "${rows[@]}"
