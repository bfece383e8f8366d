#!/usr/bin/env bash
# Installs what is missing, builds, and starts the kd> prompt attached to the simulated target
# (kdsim) over a virtual null-modem at 115200 baud. Extra arguments go to kdcart (e.g. -b).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
exec build/bin/kdcart --sim "$@"
