#!/bin/sh
# Assembles the folder that mosquitto serves as http_dir: the web client (web/), the bridge
# (bridge/) and MQTT.js's browser bundle from node_modules (never from a CDN).
#
#   tools/build-web.sh [OUTPUT_DIR]        default: build/www in the repository
#
# The output folder is replaced as a whole; a folder this script did not make is refused.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build/www"}
marker=.mosquitto-chat-www
bundle="$root/node_modules/mqtt/dist/mqtt.esm.js"

if [ ! -f "$bundle" ]; then
  echo "build-web: $bundle is missing; run 'npm ci' in $root first" >&2
  exit 1
fi
case "$out" in
  ""|/) echo "build-web: refusing to write to '$out'" >&2; exit 1 ;;
esac
if [ -e "$out" ] && [ ! -e "$out/$marker" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "build-web: $out exists and was not made by this script; not replacing it" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$out.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cp -R "$root/web/." "$tmp/"
mkdir "$tmp/bridge" "$tmp/vendor"
cp "$root/bridge/index.js" "$tmp/bridge/index.js"
cp "$bundle" "$tmp/vendor/mqtt.esm.js"
cp "$root/node_modules/mqtt/LICENSE.md" "$tmp/vendor/mqtt.LICENSE.md"
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$root/node_modules/mqtt/package.json")
printf 'mqtt %s\n' "$version" > "$tmp/vendor/VERSIONS"
: > "$tmp/$marker"
# The broker may run as the unprivileged mosquitto user: everything must be world-readable.
chmod -R a+rX "$tmp"

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "build-web: assembled $out"
