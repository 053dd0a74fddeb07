#!/usr/bin/env bash
# Files the conformance images carry besides binaries, from the same Kubernetes module: agnhost's
# porter certificate (/localhost.crt, the StatefulSet specs' readiness probe), the kitten and nautilus
# pictures and their data.json. Env: MODDIR (the module source), OUT.
set -euo pipefail
cp "$MODDIR/test/images/agnhost/porter/localhost.crt" "$MODDIR/test/images/agnhost/porter/localhost.key" "$OUT/"
for pet in kitten nautilus; do
  mkdir -p "$OUT/$pet"
  cp "$MODDIR/test/images/$pet/html/$pet.jpg" "$MODDIR/test/images/$pet/html/data.json" "$OUT/$pet/"
done
chmod 0644 "$OUT"/localhost.* "$OUT"/*/*
