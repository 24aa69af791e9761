#!/usr/bin/env bash
# Installs the Restate peer from the npm registry into a folder OUTSIDE the repository and
# prints that folder: restate-server (a Rust binary shipped in an npm package), the TypeScript
# SDK, and a Node.js 22 runtime (also an npm package) because the SDK needs Node >= 22
# (it calls Promise.withResolvers; the machine's node may be older).
# Usage: PEER_DIR=$(benchmarks/peers/restate/setup.sh)       (RESTATE_PEER_DIR to choose where)
set -eu
dir=${RESTATE_PEER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/durable-peers/restate}
server=1.7.12
sdk=1.17.2
node=22.23.5
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "restate peer: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
marker="$dir/.installed-$server-$sdk-$node-$arch"
if [ ! -f "$marker" ]; then
  command -v npm >/dev/null || { echo "restate peer: npm is not installed" >&2; exit 1; }
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "durable-restate-peer", "private": true}' \
    >"$dir/package.json"
  # --ignore-scripts: nothing needs an install script (the binaries are plain files in the
  # packages), and it keeps an analytics postinstall of a dependency from running.
  (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --save-exact \
    "@restatedev/restate-server@$server" "@restatedev/restate-sdk@$sdk" \
    "node-linux-$arch@$node") >&2
  touch "$marker"
fi
echo "$dir"
