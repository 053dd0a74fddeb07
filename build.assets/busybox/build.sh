#!/usr/bin/env bash
# busybox from the unpacked source (SRC) with Debian's configuration of its dynamic busybox, into OUT.
set -euo pipefail
cd "$SRC"
cp debian/config/pkg/deb .config
# New options take their defaults (yes stops with SIGPIPE when make is done).
{ yes "" || true; } | make oldconfig >/dev/null
make -j"$(nproc)" busybox
install -m 0755 busybox "$OUT/busybox"
