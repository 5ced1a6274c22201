#!/usr/bin/env bash
# Installs NVRTC, the CUDA run-time compiler, from Debian's non-free section (libnvrtc11.2, CUDA 11.8), so the
# kernel compilation tests can build the fused kernels on a machine without a GPU. Idempotent: returns at once
# when the library is there. Needs root (CI and the dev machines run as root) and apt; adds the non-free
# component for the running release when no configured source offers the package.
set -euo pipefail

packages=(libnvrtc11.2 libnvrtc-builtins11.8)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "the kernel compilation tests need: apt-get install ${missing[*]} (Debian non-free; run it as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
candidate() { apt-cache policy libnvrtc11.2 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
if [ -z "$(candidate)" ] || [ "$(candidate)" = "(none)" ]; then
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
