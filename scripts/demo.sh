#!/usr/bin/env bash
# make demo: the model is converted by the Makefile; this quantizes and compares.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/demo.py
