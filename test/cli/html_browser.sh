#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/cli/html_browser.sh - the HTML report of `ebb run -o FILE.html`
# opens in a real browser: headless Chromium renders it to a PNG, whose
# chart area (the SVG's plot rectangle, at the page's top) must hold drawn
# pixels of the RSS and live colours (more than their legend swatches, 56 each); the page must name the legend's
# series and have the summary and layer tables. Skipped (77) without
# Chromium (apt-get install chromium).
#
# Usage: html_browser.sh <ebb> <fake_publisher>
set -uo pipefail
ebb=$1 fake=$2
py=/usr/bin/python3
browser=$(command -v chromium || command -v chromium-browser) ||
  { echo "html_browser.sh: skipped: chromium is not installed (apt-get install chromium)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ebb" run -i 20 -o "$work/run.html" -- "$fake" workload >/dev/null 2>&1 || { echo "html_browser.sh: ebb run failed"; exit 1; }
HOME=$work timeout 60 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,700 \
  --user-data-dir="$work/profile" --screenshot="$work/shot.png" "file://$work/run.html" >"$work/browser.log" 2>&1
[[ -s $work/shot.png ]] || { cat "$work/browser.log"; echo "html_browser.sh: no screenshot"; exit 1; }
$py - "$work/shot.png" "$work/run.html" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), (depth, ctype)
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = width * bpp
rows, prev = [], bytearray(stride)
for y in range(height):  # PNG filters: None, Sub, Up, Average, Paeth
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line)
    prev = line
def colour_pixels(rgb, y0, y1):
    n = 0
    for y in range(y0, min(y1, height)):
        line = rows[y]
        for x in range(width):
            px = tuple(line[x * bpp:x * bpp + 3])
            if all(abs(px[k] - rgb[k]) < 40 for k in range(3)): n += 1
    return n
# The chart sits under the page's title and verdict, in the first ~450 rows.
red, blue = colour_pixels((0xd6, 0x27, 0x28), 0, 450), colour_pixels((0x1f, 0x77, 0xb4), 0, 450)
print(f"html_browser.sh: {width}x{height} screenshot, RSS-coloured pixels {red}, live-coloured {blue}")
assert red > 300 and blue > 120, "the chart's RSS and live curves are not on the screenshot"
html = open(sys.argv[2]).read()
for text in ('class="legend"', ">RSS<", ">live<", 'id="summary"', '<table id="layers">', "<td>small</td>",
             "verdict"):
    assert text in html, f"the page lacks {text}"
PY
