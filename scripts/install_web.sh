#!/usr/bin/env bash
# Install the website widget (rasa-webchat, pinned in web/package-lock.json)
# into web/node_modules with `npm ci`. Installs Debian's npm with apt-get when
# npm is missing and we are root; otherwise explains. Install scripts of the
# packages are not run: the widget is a prebuilt bundle.
set -euo pipefail
cd "$(dirname "$0")/../web"
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" != "0" ]; then
    echo "error: npm not found. Install Node.js and npm (sudo apt-get install npm)." >&2
    exit 1
  fi
  echo "Installing Debian's npm for the website widget"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
npm ci --ignore-scripts --no-audit --no-fund
