#!/bin/sh
# Installs the Debian packages the test suite needs, when they are missing:
#   chromium  - real-browser tests (driven by Playwright through executable_path)
#   ffmpeg    - turns evaluation speech into the WAV that Chromium's fake microphone plays;
#               encodes broadcasts (HLS, [broadcast]; only servers that broadcast need it)
#   nginx     - the broadcast test serves HLS through config/nginx-broadcast.conf
#   apertium + pairs - real rule-based translation (en<->es, fr<->es, es<->pt):
#                      scripts/translation-deps.sh, which `make run` uses too
#   nodejs    - unit tests of the browser client's pure modules (node --test tests/unit/web/)
#   npm       - installs the pinned puppeteer-core that drives Firefox (tests/browser/firefox/, no
#               browser download: the tests run `npm ci` with PUPPETEER_SKIP_DOWNLOAD=1)
#   firefox-esr - the Firefox participant of tests/browser/test_browser_firefox.py (WebDriver BiDi)
#   janus     - the Janus media engine's acceptance test (tests/acceptance/test_janus_backend.py
#               starts its own, hardened, in a network namespace); the packaged service, which
#               would listen everywhere with Janus's shipped admin secret, is stopped and disabled
#   coturn    - a real TURN server for the time-limited credential test (it starts its own on loopback)
#   redis-server - the cluster tests (issue 18) start their own Redis (a free port or a namespace);
#               the packaged service is stopped and disabled (the tests need none running)
# Needs root (or sudo). Does nothing when everything is present.
set -eu
sh "$(dirname "$0")/translation-deps.sh"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v firefox-esr >/dev/null 2>&1 || missing="$missing firefox-esr"
command -v turnserver >/dev/null 2>&1 || missing="$missing coturn"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
[ -x /usr/bin/janus ] || missing="$missing janus"
[ -x /usr/bin/redis-server ] || missing="$missing redis-server"
[ -z "$missing" ] && exit 0
echo "installing system packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
if command -v systemctl >/dev/null 2>&1 && [ -x /usr/bin/janus ]; then
    $SUDO systemctl disable --now janus.service >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -x /usr/bin/redis-server ]; then
    $SUDO systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi
