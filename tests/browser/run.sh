#!/usr/bin/env bash
# ctest entry of the studio's browser test (studio.test.mjs): skips (exit 77, one line why) when Debian's
# chromium or the pinned playwright-core (scripts/setup-browser.sh installs both) is missing, unless
# NB_REQUIRE_BROWSER=1 or CI=true, where a missing browser is a failure.
#   run.sh NANOBANANA_BINARY DEMO_MODEL_DIR OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
chromium=${NB_CHROMIUM:-/usr/bin/chromium}
missing=""
command -v node >/dev/null || missing="node"
[ -x "$chromium" ] || missing="${missing:+$missing, }chromium ($chromium)"
[ -f "$here/node_modules/playwright-core/package.json" ] || missing="${missing:+$missing, }tests/browser/node_modules"
if [ -n "$missing" ]; then
  if [ "${NB_REQUIRE_BROWSER:-}" = "1" ] || [ "${CI:-}" = "true" ]; then
    echo "browser test: missing $missing (run scripts/setup-browser.sh)" >&2
    exit 1
  fi
  echo "browser test skipped: missing $missing (scripts/setup-browser.sh installs them)"
  exit 77
fi
export NB_CHROMIUM="$chromium"
exec node "$here/studio.test.mjs" "$@"
