#!/usr/bin/env bash
# The real Amp CLI, pinned, through the gateway pointed at localhost, against a fake edge that
# enforces the production edge's rules: see test/real-client/harness.ts. Opt-in (it downloads a
# ~100 MB binary once into a cache directory); Linux only (a private network namespace keeps
# every connection on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.0.1790142911-g7618fb
cache="${AMP_REAL_CLIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amp-proxy-middleware/amp-cli-$version}"
case "$(uname -m)" in
  x86_64) platform=linux-x64 ;;
  aarch64 | arm64) platform=linux-arm64 ;;
  *) echo "real-client: no Amp CLI binary for $(uname -m)" >&2; exit 1 ;;
esac
amp="$cache/node_modules/@ampcode/cli-$platform/amp"
if [ ! -x "$amp" ]; then
  echo "real-client: installing @ampcode/cli@$version into $cache"
  npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "@ampcode/cli@$version"
fi

namespace=(unshare --net)
[ "$(id -u)" = 0 ] || namespace=(unshare --map-root-user --net)
exec "${namespace[@]}" bash -c 'ip link set lo up && exec node --import tsx test/real-client/harness.ts "$1"' _ "$amp"
