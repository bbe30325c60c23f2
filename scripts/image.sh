#!/usr/bin/env bash
# Builds the operator's OCI image without a daemon and writes it as an OCI archive:
#
#   scripts/image.sh [--tag TAG] [--output FILE]
#
# 1. a static binary: `cargo build --release --target x86_64-unknown-linux-musl -p
#    vaultkeeper` with the default (production) features;
# 2. image/Containerfile, built with buildah (Debian's `buildah` package) from scratch:
#    the binary, the CA bundle, an empty /tmp, user 65532, no shell;
# 3. `dist/vaultkeeper-<tag>.oci.tar` (an OCI archive: `skopeo copy
#    oci-archive:dist/… docker://registry/…` pushes it) and its manifest digest, printed
#    and written next to it as `.digest`, for pinning the chart's `image.digest`.
#
# Needs root (or a user with subuids) for buildah, the Rust musl target and musl-gcc;
# installs the last two and buildah when they are missing and it can (rustup, apt-get).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version="$(cargo pkgid -p vaultkeeper | sed 's/.*[#@]//')"
case "$version" in
  "" | *[!0-9A-Za-z.+-]*) echo "image.sh: cannot read the vaultkeeper version (got '$version')" >&2; exit 1 ;;
esac
tag="$version"
output=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    *) echo "image.sh: unknown argument $1 (use --tag TAG, --output FILE)" >&2; exit 2 ;;
  esac
done
output="${output:-dist/vaultkeeper-$tag.oci.tar}"
target=x86_64-unknown-linux-musl

need_apt=()
command -v buildah >/dev/null || need_apt+=(buildah)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "image.sh: install ${need_apt[*]} (Debian packages) first" >&2
    exit 1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# ring's C code is compiled with musl-gcc; the Rust side links statically by default on
# musl.
CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --release --locked --target "$target" -p vaultkeeper --bin vaultkeeper
binary="target/$target/release/vaultkeeper"
if file "$binary" 2>/dev/null | grep -q "dynamically linked"; then
  echo "image.sh: $binary is not static" >&2
  exit 1
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
install -D -m 0555 "$binary" "$rootfs/usr/local/bin/vaultkeeper"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -d -m 1777 "$rootfs/tmp"

image="localhost/vaultkeeper:$tag"
buildah --storage-driver vfs build --quiet --format oci --layers=false \
  --timestamp 0 \
  --label "org.opencontainers.image.title=vaultkeeper" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.source=https://github.com/vaultkeeper/vaultkeeper" \
  -f image/Containerfile -t "$image" "$context" >/dev/null

mkdir -p "$(dirname "$output")"
rm -f "$output"
buildah --storage-driver vfs push --quiet --format oci "$image" "oci-archive:$output:$image"
# The manifest's digest as the archive's index names it: what a registry keeps when the
# archive is copied to it unconverted.
digest="$(tar -xOf "$output" index.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')"
printf '%s\n' "$digest" > "$output.digest"
# What the chart and deploy/ rely on: entrypoint, non-root user, labels, no shell, static.
python3 scripts/check-image.py "$output" --version "$version"
echo "image $image written to $output ($(du -h "$output" | cut -f1)), manifest digest $digest"
