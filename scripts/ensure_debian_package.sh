#!/usr/bin/env bash
# Make sure a Debian package the tests need is installed:
#   scripts/ensure_debian_package.sh PACKAGE BINARY OVERRIDE_VAR WHAT_FOR
# e.g. chromium for the browser tests (Playwright drives /usr/bin/chromium
# through executable_path; it never downloads a browser of its own) and nginx
# for the scale-out deployment (run as our own child process with a generated
# config; the Debian service is not used). Nothing to do when BINARY exists;
# installs with apt-get when we are root; otherwise explains.
set -euo pipefail
package="$1" binary="$2" override="$3" what_for="$4"
if [ -x "$binary" ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "error: $binary not found. Install Debian's $package package (sudo apt-get install $package) or set $override." >&2
  exit 1
fi
echo "Installing Debian's $package for $what_for"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
# a package may start a system service (nginx on port 80): it is not ours to run
if [ -x "/etc/init.d/$package" ] && command -v service >/dev/null 2>&1; then
  service "$package" stop >/dev/null 2>&1 || true
fi
