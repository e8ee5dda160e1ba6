#!/usr/bin/env bash
# Profiles the proxy's hot path under load, to check a fix against the numbers in BENCHMARKS.md.
#
#   bench/profile.sh [CONNS] [SECONDS]      defaults: 32 connections, 10 seconds
#
# Builds a release binary with symbols (same profile, not stripped, line tables) into
# $CARGO_TARGET_DIR/profiling, runs it in front of a static upstream (nginx, else otbench), loads
# it with wrk and prints: the flat perf profile, the inclusive cost of the proxy's own functions,
# and the syscalls per request (strace -c, a separate shorter run: strace slows the process).
# Needs perf and strace (apt-get install linux-perf strace); loopback only; cleans up on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CONNS=${1:-32}
SECS=${2:-10}
PATH_Q='/api/marketer/revshare/campaigns?limit=1'
export PATH="$PATH:/usr/sbin:/sbin"
for t in perf strace wrk cargo; do
  command -v $t >/dev/null || { echo "profile.sh: $t is needed (Debian: apt-get install linux-perf strace wrk)" >&2; exit 1; }
done

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
PBIN=$TARGET/profiling/release/onlytraffic-proxy
OTB=$TARGET/otbench/release/otbench
echo "== building a symbolized release binary into $TARGET/profiling" >&2
(cd "$REPO" && CARGO_TARGET_DIR=$TARGET/profiling CARGO_PROFILE_RELEASE_STRIP=none \
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --locked -q)
(cd "$HERE/tools" && CARGO_TARGET_DIR=$TARGET/otbench cargo build --release --locked -q)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/otproxy-profile.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
  local p
  [ -f "$TMP/nginx.pid" ] && kill -TERM "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P_UP P_PX <<<"$("$OTB" free-ports 2)"
if command -v nginx >/dev/null; then
  cat >"$TMP/nginx.conf" <<EOF
worker_processes auto;
pid $TMP/nginx.pid;
error_log $TMP/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 10000000;
  client_body_temp_path $TMP/b; proxy_temp_path $TMP/p; fastcgi_temp_path $TMP/f; uwsgi_temp_path $TMP/u; scgi_temp_path $TMP/s;
  server { listen 127.0.0.1:$P_UP; default_type application/json; location / { return 200 '{"status":"success","data":[]}'; } }
}
EOF
  nginx -e "$TMP/nginx.log" -p "$TMP" -c "$TMP/nginx.conf"
else
  "$OTB" upstream --listen "127.0.0.1:$P_UP" --threads 2 >/dev/null 2>&1 &
  PIDS+=("$!")
fi
env ONLYTRAFFIC_API_KEY=bench-fake-key OTPROXY_LISTEN=127.0.0.1:$P_PX OTPROXY_UPSTREAM=http://127.0.0.1:$P_UP \
  OTPROXY_LOG=warn OTPROXY_RATE_LIMIT__RATE=1000000000 OTPROXY_RATE_LIMIT__PER=1s \
  OTPROXY_RATE_LIMIT__BURST=1000000000 "$PBIN" 2>"$TMP/proxy.log" &
PX=$!
PIDS+=("$PX")
for _ in $(seq 100); do "$OTB" get "http://127.0.0.1:$P_PX$PATH_Q" >/dev/null 2>&1 && break; sleep 0.1; done
URL="http://127.0.0.1:$P_PX$PATH_Q"
T=2
[ "$CONNS" -lt 2 ] && T=1
wrk -t$T -c"$CONNS" -d2s "$URL" >/dev/null

echo "== perf: ${SECS}s at $CONNS connections" >&2
perf record -F 1999 --call-graph dwarf,32768 -p "$PX" -o "$TMP/perf.data" -- sleep "$SECS" >/dev/null 2>&1 &
REC=$!
timeout $((SECS + 30)) wrk -t$T -c"$CONNS" -d"${SECS}s" "$URL" | grep -E 'requests in|Requests/sec'
wait "$REC" || true
echo
echo "-- flat (self time; kernel, libc and the binary)"
perf report -i "$TMP/perf.data" --no-children --stdio --sort dso,symbol -g none --percent-limit 0.7 2>/dev/null |
  grep -v '^#' | grep -v '^$' | sed 's/ \{3,\}-.*//' | cut -c1-150
echo
echo "-- inclusive cost of the proxy's own functions (includes what they call, syscalls included)"
perf report -i "$TMP/perf.data" --children --stdio --sort symbol -g none 2>/dev/null | grep -v '^#' |
  sed 's/ \{3,\}-.*//' | grep -E '\] onlytraffic_proxy::|uuid::|getrandom|malloc|_int_free|cfree' | head -30 | cut -c1-150

echo
echo "== syscalls per request (strace -c, 3s at $CONNS connections)"
timeout 10 strace -c -f -p "$PX" -o "$TMP/strace.txt" &
ST=$!
sleep 0.5
N=$(timeout 30 wrk -t$T -c"$CONNS" -d3s "$URL" | awk '/requests in/ { print $1 }')
sleep 0.5
kill -INT "$ST" 2>/dev/null || true
wait "$ST" 2>/dev/null || true
awk -v n="$N" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && n > 0 { printf "%8.2f  %s\n", $4 / n, $NF }' "$TMP/strace.txt" | sort -rn | head -8
echo "(requests: $N)"
