#!/usr/bin/env bash
# Builds the servicemock image offline: a static binary compiled here, copied
# into an image FROM scratch (nothing is pulled).
#   docker/build.sh [IMAGE]      default IMAGE: servicemock:latest
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-${SERVICEMOCK_IMAGE:-servicemock:latest}}"
target=x86_64-unknown-linux-gnu

RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --locked --target "$target" --target-dir target/static
binary="target/static/$target/release/servicemock"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/servicemock"
docker build --quiet -f docker/Dockerfile -t "$image" "$context" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image ($((size / 1024 / 1024)) MiB)"
