#!/usr/bin/env bash
# Make sure Debian's nginx is installed for the scale-out deployment
# (`make run-cluster`) and its tests (tests/scale_out). The cluster runs it as
# its own child process with a generated config; the Debian service is not used.
# Installs it with apt-get when missing and we are root; otherwise explains.
set -euo pipefail
nginx="${NGINX_BINARY:-/usr/sbin/nginx}"
if [ -x "$nginx" ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "error: $nginx not found. Install Debian's nginx package (sudo apt-get install nginx) or set NGINX_BINARY." >&2
  exit 1
fi
echo "Installing Debian's nginx for the scale-out deployment"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
# the package may start the system service on port 80: it is not ours to run
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
