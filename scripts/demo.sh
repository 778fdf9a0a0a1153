#!/usr/bin/env bash
# The main job against a real kernel: builds dmsnap and runs the live-snapshot walkthrough
# (scripts/demo/walkthrough.sh) inside the VM. On a Linux host with device-mapper you can
# run the walkthrough directly as root: DMSNAP=target/release/examples/dmsnap scripts/demo/walkthrough.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --example dmsnap
exec scripts/vm/run.sh --timeout 900 \
    --add target/release/examples/dmsnap:/usr/local/bin/dmsnap \
    --add scripts/demo/walkthrough.sh:/usr/local/bin/walkthrough.sh \
    -- 'sh /usr/local/bin/walkthrough.sh'
