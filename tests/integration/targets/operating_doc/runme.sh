#!/usr/bin/env bash
# docs/operating.md, done by the book: a fresh HOME and virtualenv, the release tarball,
# the doc's shell blocks run in order in one shell, time moved where the doc says days
# pass, and what the doc promises checked after each step (operating.py).
set -euo pipefail
. ../lease_cycle/env.sh
python3 operating.py "$OUTPUT_DIR/operator" "$(dirname "$(dirname "$(conf docs_images)")")"
