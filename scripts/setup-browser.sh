#!/usr/bin/env bash
# Headless Chromium for the report's end-to-end test (tests/test_report.py).
# Idempotent and quiet: does nothing when Chromium is already on PATH. Installs the Debian packages
# `chromium` and `chromium-driver` with apt-get when run as root (or with passwordless sudo);
# otherwise says how to, and leaves the test to skip (or to fail under CI=true).
set -euo pipefail

for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-browser: Chromium not found; install it (Debian/Ubuntu: apt-get install chromium chromium-driver)" \
         "or set CHROMIUM=/path/to/chrome; the report's browser test is skipped without it" >&2
    exit 0
fi
echo "setup-browser: installing chromium and chromium-driver (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
