#!/usr/bin/env bash
# Installs what the playground's browser tests drive: Debian's chromium and a font for it to render text
# with. Idempotent: returns at once when both are there. Needs root (CI and the dev machines run as root);
# elsewhere it says which command to run.
set -euo pipefail

packages=(chromium fonts-liberation)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "the browser tests need: apt-get install ${missing[*]} (run it as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# a source that cannot be refreshed is not fatal: the install below says whether chromium could be had
apt-get update -qq || echo "apt-get update failed; trying the install with the package lists there are" >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}"
