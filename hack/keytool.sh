#!/usr/bin/env bash
# Prints the path of a JDK's keytool, which the credentials tests use to check that Java
# reads the keystores and certificate subjects the operator writes. It looks on PATH and
# under /usr/lib/jvm; on a Debian machine without a JDK (as root) it installs
# openjdk-17-jdk-headless once. Prints nothing if no keytool can be had: the tests then
# skip, or fail under CI=true.
set -euo pipefail

find_keytool() {
  if command -v keytool >/dev/null 2>&1; then command -v keytool; return 0; fi
  for k in /usr/lib/jvm/*/bin/keytool; do
    if [ -x "$k" ]; then echo "$k"; return 0; fi
  done
  return 1
}

if find_keytool; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "keytool: installing openjdk-17-jdk-headless (first run only)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless; } >&2 || true
  find_keytool || true
fi
