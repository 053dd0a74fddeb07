#!/usr/bin/env bash
# The sandbox ("pause") container's only process, from the same Kubernetes module, static so its
# image needs nothing else. Its version is the tag upstream's build/pause/Makefile gives it.
# Env: MODDIR (the module source), OUT.
set -euo pipefail
PAUSE_VERSION=$(sed -n 's/^TAG ?= *//p' "$MODDIR/build/pause/Makefile")
[ -n "$PAUSE_VERSION" ] || { echo "no TAG in build/pause/Makefile" >&2; exit 1; }
gcc -Os -static -DVERSION="$PAUSE_VERSION" -o "$OUT/pause" "$MODDIR/build/pause/linux/pause.c"
strip "$OUT/pause"
echo "$PAUSE_VERSION" > "$OUT/pause.version"
