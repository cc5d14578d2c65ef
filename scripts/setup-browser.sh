#!/usr/bin/env bash
# Installs what the studio's browser test needs (only for the test path; the CLI needs none of it): Debian's
# chromium, node + npm if missing, and the pinned playwright-core into tests/browser/node_modules (npm ci from
# tests/browser/package-lock.json). Idempotent: a second run installs nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "setup-browser: $*" >&2; }
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if ((${#packages[@]})); then
  say "installing Debian packages: ${packages[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    say "package installation failed (output above)"
    exit 1
  fi
  rm -f "$log"
fi
# playwright-core is pinned at 1.60, the newest that still runs on node 18 (Debian 12's own nodejs); 1.65 needs 20.
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  say "node $(node --version) is too old for playwright-core (needs >= 18)"
  exit 1
fi
dir="$root/tests/browser"
want=$(node -p "require('$dir/package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('$dir/node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$want" != "$have" ]; then
  say "installing playwright-core $want into tests/browser/node_modules"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
