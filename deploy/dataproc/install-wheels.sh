#!/usr/bin/env bash
# Dataproc initialization action (runs as root on every node at cluster creation): install the
# Spark job's Python dependencies from the wheels staged beside the code (deploy/dataproc/bundle.py).
# No internet access is needed: internal-IP-only clusters have no egress to PyPI.
set -euo pipefail
WHEELS_URI=$(/usr/share/google/get_metadata_value attributes/stock-platform-wheels)
PYTHON=${DATAPROC_PYTHON:-/opt/conda/default/bin/python}
WHEELS=$(mktemp -d)
gcloud storage cp "${WHEELS_URI%/}/*" "$WHEELS/"
"$PYTHON" -m pip install --no-index --find-links "$WHEELS" --requirement "$WHEELS/requirements.txt"
rm -rf "$WHEELS"
