#!/usr/bin/env bash
# Installs the Debian packages a test drives (chromium for the playground's browser tests, NVRTC for the kernel
# compilation tests). Idempotent: returns at once when all are installed. Needs root (CI and the dev machines run as
# root); elsewhere it says which command to run. With --non-free first, adds Debian's non-free component for the
# running release when no configured source offers the first package.
#   install-debian-packages.sh [--non-free] PACKAGE...
set -euo pipefail

non_free=false
if [ "${1:-}" = "--non-free" ]; then non_free=true; shift; fi
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "these tests need: apt-get install ${missing[*]}$($non_free && echo ' (Debian non-free)') (run it as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
if $non_free && { [ -z "$(candidate "$1")" ] || [ "$(candidate "$1")" = "(none)" ]; }; then
  . /etc/os-release
  cat > /etc/apt/sources.list.d/serving-non-free.sources <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME}
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
# a source that cannot be refreshed is not fatal: the install below says whether the packages could be had
apt-get update -qq || echo "apt-get update failed; trying the install with the package lists there are" >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}"
