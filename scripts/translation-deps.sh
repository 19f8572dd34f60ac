#!/bin/sh
# Installs the Apertium translation pairs the default configuration uses
# ([captions] translation_languages = en, es, fr, pt):
#   apertium          - the translator itself
#   apertium-eng-spa  - en<->es
#   apertium-fr-es    - fr<->es (fr<->en through Spanish)
#   apertium-es-pt    - es<->pt (pt<->en through Spanish)
# Skips what is present (apt-get update only when something is missing); uses sudo when not
# root. Without apt-get it does nothing and says what to install. Exits non-zero when an
# install was needed and failed.
# APERTIUM_MODES_DIR: where installed pairs put their modes (default /usr/share/apertium/modes).
set -eu
MODES_DIR="${APERTIUM_MODES_DIR:-/usr/share/apertium/modes}"
missing=""
command -v apertium >/dev/null 2>&1 || missing="apertium"
for pair in eng-spa fr-es es-pt; do
  [ -e "$MODES_DIR/$pair.mode" ] || missing="$missing apertium-$pair"
done
missing="${missing# }"
if [ -z "$missing" ]; then
  echo "translation pairs: apertium eng-spa, fr-es, es-pt present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "translation pairs: apt-get is not available here; nothing installed." \
    "Install these (or their equivalents) to translate captions into es/fr/pt: $missing"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root() { DEBIAN_FRONTEND=noninteractive "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo DEBIAN_FRONTEND=noninteractive "$@"; }
else
  echo "translation pairs: not root and no sudo: cannot install $missing" >&2
  exit 1
fi
echo "installing translation pairs: $missing"
as_root apt-get update -q
# shellcheck disable=SC2086
as_root apt-get install -y -q --no-install-recommends $missing
