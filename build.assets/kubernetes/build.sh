#!/usr/bin/env bash
# Kubernetes server binaries and the pause binary from Debian's `kubernetes` source, built the way
# its debian/rules does (GOPATH symlink + `make WHAT=`); a plain `go build ./cmd/x` rejects go.mod.
# Env: SRC (unpacked tree, cwd), OUT (results), WORK (scratch), JOBS.
set -euo pipefail
cd "$SRC"
export GOPATH="$SRC/.go" GOCACHE="$WORK/go-build" HOME="$WORK/home" CGO_ENABLED=0 GOPROXY=off
# Without git metadata the build stamps these into `version` output.
export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean
# The node IPAM controller waits a fixed 10 s before its first look at the node list, which holds
# back every controller started after it (pod CIDRs, the `default` service account) on a fresh
# cluster. Look at once, then every second (later Kubernetes releases poll immediately too).
f=pkg/controller/nodeipam/ipam/cidr_allocator.go
sed -i 's/wait.Poll(10\*time.Second, apiserverStartupGracePeriod,/wait.PollImmediate(time.Second, apiserverStartupGracePeriod,/' "$f"
grep -q 'wait.PollImmediate(time.Second, apiserverStartupGracePeriod' "$f" || { echo "nodeipam patch did not apply" >&2; exit 1; }
mkdir -p .go/src/k8s.io "$HOME"
[ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  install -m 0755 "_output/local/bin/linux/amd64/$b" "$OUT/$b"
done
# The sandbox ("pause") container's only process, static so the image needs nothing else.
gcc -Os -static -DVERSION=3.2 -o "$OUT/pause" build/pause/linux/pause.c
strip "$OUT/pause"
"$OUT/kube-apiserver" --version
