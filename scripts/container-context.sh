#!/usr/bin/env bash
# Lays out the build context of Containerfile (the release image) from static binaries built
# beforehand, so the image build runs no code and needs no emulation for other architectures:
#
#   scripts/container-context.sh DIR AMD64_BINARY [ARM64_BINARY]
#
# DIR/linux/<arch>/image-updater   the binaries, per Docker's TARGETARCH
# DIR/rootfs/etc/ssl/certs/ca-certificates.crt   the CA bundle (TLS to registries and forges)
# DIR/rootfs/tmp                   world-writable, sticky: `run --clone` clones under it
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DIR AMD64_BINARY [ARM64_BINARY]" >&2
  exit 2
fi
dir="$1"
ca="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$ca" ] || { echo "$0: no CA bundle at $ca (apt-get install ca-certificates, or set CA_BUNDLE)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/rootfs/etc/ssl/certs" "$dir/rootfs/tmp"
chmod 1777 "$dir/rootfs/tmp"
cp "$ca" "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 644 "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
install -D -m 755 "$2" "$dir/linux/amd64/image-updater"
if [ $# -ge 3 ]; then
  install -D -m 755 "$3" "$dir/linux/arm64/image-updater"
fi
