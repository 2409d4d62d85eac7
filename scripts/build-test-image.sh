#!/usr/bin/env bash
# Builds a tiny busybox image without a registry: bin/busybox plus its applet links, imported with
# `docker import`. Used by the Docker tests, the demo and the benchmarks.
# Usage: scripts/build-test-image.sh [NAME:TAG]   (default cutter-test/busybox:latest)
set -euo pipefail
image="${1:-cutter-test/busybox:latest}"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "image $image already present"
  exit 0
fi
busybox="$(command -v busybox || true)"
if [ -z "$busybox" ]; then
  echo "busybox not found: install it first (Debian: apt-get install -y busybox-static)" >&2
  exit 1
fi
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && ldd "$busybox" >/dev/null 2>&1; then
  echo "$busybox is dynamically linked; the image needs a static busybox (Debian: busybox-static)" >&2
  exit 1
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$image" >/dev/null
echo "built $image"
