#!/usr/bin/env bash
# Installs what building, booting and testing Planet needs on a Debian 12 host (run as root).
# Idempotent: quick when everything is already there.
set -euo pipefail
BUN_VERSION=1.4.5
# The Go every recipe can build with (the newest go directive among build.assets/*/go.mod). When the
# machine has none as new, any Go (Debian's golang-go if need be) downloads the toolchain module from
# the module proxy (GOPROXY), verified by the checksum database, into the asset cache.
GO_VERSION=1.26.8
CACHE=${PLANET_CACHE_DIR:-$HOME/.cache/planet}
PACKAGES=(
  mmdebstrap dpkg-dev ca-certificates xz-utils pigz   # base rootfs, debs, source packages
  build-essential pkg-config libseccomp-dev           # cgo (runc with seccomp), static pause, busybox
  curl unzip rsync jq                                 # Go toolchain from the module proxy
  runc socat iproute2 iptables util-linux             # the bubble: runc, READY=1, test hosts
  systemd openssl etcd-server etcd-client             # systemd-analyze verify, PKI checks, agent tests
  dnsmasq-base                                        # the upstream DNS server the network test starts
)
[ "$(id -u)" = 0 ] || { echo "NOT_ROOT: host-deps.sh installs Debian packages; run as root" >&2; exit 1; }

missing=()
# bun comes from the npm registry; use the machine's npm, or Debian's when there is none.
command -v npm >/dev/null || PACKAGES+=(npm)
for p in "${PACKAGES[@]}"; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The host's own etcd unit (from etcd-server) must not run: tests start etcd on loopback ports themselves.
systemctl disable --now etcd.service >/dev/null 2>&1 || true

# Go: the first of these that is new enough wins (build.assets recipes look in the same places).
go_ok() { [ -x "$1" ] && v=$("$1" env GOVERSION 2>/dev/null) && [ "$(printf '%s\n' "go$GO_VERSION" "$v" | sort -V | head -1)" = "go$GO_VERSION" ]; }
if ! go_ok "$CACHE/go/toolchain/bin/go" && ! go_ok /usr/local/go/bin/go && ! go_ok "$(command -v go || true)"; then
  anygo=$(command -v go || true)
  if [ -z "$anygo" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go
    anygo=$(command -v go)
  fi
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
  echo "host-deps: Go $GO_VERSION from the module proxy (with $($anygo version | awk '{print $3}'))"
  dir=$(cd "$tmp" && GOMODCACHE="$tmp/mod" GOFLAGS=-modcacherw GO111MODULE=on GOTOOLCHAIN=local \
    "$anygo" mod download -json "golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" | jq -r .Dir)
  [ -f "$dir/bin/go" ] || { echo "GO_MISSING: could not download Go $GO_VERSION from GOPROXY=$("$anygo" env GOPROXY)" >&2; exit 1; }
  mkdir -p "$CACHE/go"
  rm -rf "$CACHE/go/toolchain.new"
  cp -a "$dir" "$CACHE/go/toolchain.new"
  chmod -R u+w "$CACHE/go/toolchain.new"
  chmod +x "$CACHE"/go/toolchain.new/bin/* "$CACHE"/go/toolchain.new/pkg/tool/*/*
  rm -rf "$CACHE/go/toolchain" && mv "$CACHE/go/toolchain.new" "$CACHE/go/toolchain"
fi

if ! command -v bun >/dev/null || [ "$(bun --version)" != "$BUN_VERSION" ]; then
  npm install -g --silent "bun@$BUN_VERSION"
fi
gobin=$(for g in "$CACHE/go/toolchain/bin/go" /usr/local/go/bin/go "$(command -v go || true)"; do go_ok "$g" && { echo "$g"; break; }; done)
echo "host-deps: ok (bun $(bun --version), $("$gobin" env GOVERSION) at $gobin, runc $(runc --version | head -1 | awk '{print $3}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}'))"
