#!/usr/bin/env bash
# Installs the Debian packages the local stack runs on, only when something is missing, so a
# warm `make run` / `make test` spends no time here and prints nothing.
set -euo pipefail

missing=()
postgres_bin=""
for dir in /usr/lib/postgresql/*/bin; do
  if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ]; then postgres_bin="$dir"; fi
done
[ -n "$postgres_bin" ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The local Prometheus (promtool comes with it: CI checks the rules and the generated config)
# and its Pushgateway.
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
  || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
# Kafka 4.x needs Java 17+; the packaged JRE is enough (we never compile Java).
if ! command -v java >/dev/null 2>&1; then
  missing+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# The trading page: npm fetches its chart library; the browser test drives Debian's chromium
# (Playwright never downloads a browser here).
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# mypyc's build of the engine (make engine-compiled): a C compiler and Python's headers.
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
python_h="$(${PYTHON:-python3.11} -c 'import sysconfig; print(sysconfig.get_path("include"))' \
  2>/dev/null)/Python.h"
[ -f "$python_h" ] || missing+=(python3.11-dev)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages: ${missing[*]} (run 'make system-packages' as root or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing system packages: ${missing[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi

echo "installing system packages: ${missing[*]}"
log=$(mktemp /tmp/bourse-apt.XXXXXX.log)
# Debian may start its own postgresql/redis/prometheus services on install; they use the
# default ports (5432/6379/9090/9091), ours use different ones, and the stack never relies on
# them.
if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "error: apt-get could not install ${missing[*]}; see $log" >&2
  exit 1
fi
rm -f "$log"
