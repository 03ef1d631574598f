#!/usr/bin/env bash
# Soak: mixed traffic through a release gateway for MINUTES, with its memory and open files
# recorded each minute. Not part of `cargo test`.
#
#   bash benches/soak.sh              # 30 minutes
#   MINUTES=3 bash benches/soak.sh    # a quick look
#
# The traffic (examples/loadgen.rs, `soak`), all at once: a two-factor session proxied at
# 200 req/s; bob signing in, opening a page and signing out twice a second; 5 wrong passwords a
# second from ever new addresses and names, one in ten for alice from one address (bans come and
# go); alice through the code challenge every 31 s from an address of her own (every third time
# a wrong code first, then the right one).
# Writes target/bench/soak.csv (minute, rss_kib, fds, threads) and prints it with the answers
# each kind of traffic got. Memory is flat when RSS after the warm-up (minute 5) stops growing.
set -euo pipefail

MINUTES=${MINUTES:-30}

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/bench"
WORK="$OUT/soak"
rm -rf "$WORK"
mkdir -p "$WORK"

# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
install_missing nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building (release)"
cargo build --release --quiet --bin stepgate --example loadgen
STEPGATE="$ROOT/target/release/stepgate"
LOADGEN="$ROOT/target/release/examples/loadgen"

UP=$(free_port)
SG=$(free_port)
nginx_conf upstream 1 "$UP" "$(upstream_server "$UP")"
"$NGINX" -p "$WORK" -c "$WORK/upstream.conf" >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)
stepgate_conf "$SG" "$UP" 2
"$STEPGATE" check --config "$WORK/stepgate.toml" >/dev/null
"$STEPGATE" run --config "$WORK/stepgate.toml" >"$WORK/stepgate.out" 2>&1 &
GW=$!
PIDS+=("$GW")
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$SG/_stepgate/health" >/dev/null 2>&1 && break
    sleep 0.1
done

echo "signing alice in with two-step verification"
COOKIE=$("$LOADGEN" session "http://127.0.0.1:$SG" "$WORK/data" "$WORK/alice.key")

sample() { # minute
    local rss threads fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$GW/status")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$GW/status")
    fds=$(find "/proc/$GW/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$1,$rss,$fds,$threads" >>"$OUT/soak.csv"
    echo "minute $1: rss ${rss} KiB, ${fds} open files, ${threads} threads"
}

echo "minute,rss_kib,fds,threads" >"$OUT/soak.csv"
echo "soaking for $MINUTES minutes"
"$LOADGEN" soak "http://127.0.0.1:$SG" "$COOKIE" "$WORK/alice.key" $((MINUTES * 60)) >"$WORK/answers" 2>&1 &
LOAD=$!
PIDS+=("$LOAD")
sample 0
for minute in $(seq 1 "$MINUTES"); do
    sleep 60
    kill -0 "$GW" 2>/dev/null || { echo "the gateway died; see $WORK/stepgate.out" >&2; exit 1; }
    sample "$minute"
done
wait "$LOAD"

echo
echo "soak, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $MINUTES minutes; answers by kind and status (0: none):"
cat "$WORK/answers"
# From the warm-up on: the lowest, middle and highest RSS, and the middle of each half (a leak
# shows as a second half above the first; argon2's 19 MiB blocks, kept or returned by the
# allocator, make single samples jump by about that much either way).
awk -F, 'NR > 1 && $1 >= 5 { n++; rss[n] = $2; fds[n] = $3 }
    function median(a, from, to,   b, k, i, j, t) {
        k = 0; for (i = from; i <= to; i++) b[++k] = a[i]
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
        return (k % 2) ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
    }
    END {
        if (n < 2) { print "too short for a memory summary (under 6 minutes)"; exit }
        lo = rss[1]; hi = rss[1]; flo = fds[1]; fhi = fds[1]
        for (i = 1; i <= n; i++) {
            if (rss[i] < lo) lo = rss[i]; if (rss[i] > hi) hi = rss[i]
            if (fds[i] < flo) flo = fds[i]; if (fds[i] > fhi) fhi = fds[i]
        }
        h = int(n / 2)
        printf "rss from minute 5: lowest %d KiB, median %d KiB, highest %d KiB; median of the first half %d KiB, of the second %d KiB\n",
            lo, median(rss, 1, n), hi, median(rss, 1, h), median(rss, h + 1, n)
        printf "open files from minute 5: %d to %d\n", flo, fhi
    }' "$OUT/soak.csv"
