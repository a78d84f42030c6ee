#!/usr/bin/env bash
# Renders an attnscope report.html in headless Chromium (Debian `chromium`)
# and saves a full-page PNG beside it, to look at what users will see.
#
#   scripts/screenshot_report.sh out/default/report.html [WIDTH] [HEIGHT]
#
# Needs: apt-get install chromium. The page is self-contained, so Chromium
# runs with networking off.
set -euo pipefail
html="$(realpath "${1:?usage: $0 REPORT.html [WIDTH] [HEIGHT]}")"
png="${html%.html}.png"
width="${2:-1280}"
height="${3:-3200}"
chrome="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$chrome" ] || { echo "screenshot: chromium not found (apt-get install chromium)" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$width,$height" \
  --screenshot="$png" "file://$html" 2>/dev/null
echo "screenshot: $png"
