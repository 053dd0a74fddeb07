#!/usr/bin/env bash
# Installs what building, booting and testing Planet needs on a Debian 12 host (run as root).
# Idempotent: quick when everything is already there.
set -euo pipefail
BUN_VERSION=1.4.5
PACKAGES=(
  mmdebstrap dpkg-dev ca-certificates xz-utils pigz   # base rootfs and source assets
  golang-go build-essential rsync jq                  # Kubernetes from Debian source, static pause
  runc socat iproute2 iptables util-linux             # the bubble: runc, READY=1, test hosts
  systemd openssl etcd-server etcd-client             # systemd-analyze verify, PKI checks, agent tests
)
[ "$(id -u)" = 0 ] || { echo "NOT_ROOT: host-deps.sh installs Debian packages; run as root" >&2; exit 1; }

src=/etc/apt/sources.list.d/planet-src.sources
if [ ! -f "$src" ]; then
  # `apt-get source kubernetes` needs a deb-src entry.
  cat > "$src" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fresh=1
fi
missing=()
# bun comes from the npm registry; use the machine's npm, or Debian's when there is none.
command -v npm >/dev/null || PACKAGES+=(npm)
for p in "${PACKAGES[@]}"; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] || [ -n "${fresh:-}" ]; then
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The host's own etcd unit (from etcd-server) must not run: tests start etcd on loopback ports themselves.
systemctl disable --now etcd.service >/dev/null 2>&1 || true

if ! command -v bun >/dev/null || [ "$(bun --version)" != "$BUN_VERSION" ]; then
  npm install -g --silent "bun@$BUN_VERSION"
fi
echo "host-deps: ok (bun $(bun --version), runc $(runc --version | head -1 | awk '{print $3}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}'))"
