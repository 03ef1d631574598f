#!/usr/bin/env bash
# Load benchmark: stepgate against nginx, in one run, on this machine.
#
#   bash benches/load.sh                 # defaults below; about 6 minutes
#   ROUNDS=3 DURATION=5s bash benches/load.sh
#
# Cases (same upstream, same connections, same worker count for nginx and stepgate):
#   upstream                  nginx serving a small fixed response, measured directly: the ceiling
#   nginx_proxy               nginx as a plain reverse proxy to it (no authentication)
#   nginx_auth_request        nginx with auth_request to a minimal in-nginx auth location
#   pingora_floor             pingora with nothing of stepgate in it (examples/pingora_floor.rs):
#                             what pingora itself costs; bypass minus this is stepgate's own code
#   stepgate_bypass           stepgate on a bypass route
#   stepgate_2fa_session      stepgate with a signed-in two-factor session (identity headers and
#                             the signed assertion injected)
#   stepgate_2fa_session_pg_redis
#                             the same through a second stepgate whose store is PostgreSQL and
#                             whose limits are in Redis, as one of several gateways would run
#                             (a database of its own on STEPGATE_BENCH_POSTGRES, default
#                             postgres://postgres@127.0.0.1:5432, dropped at the end; Redis at
#                             STEPGATE_BENCH_REDIS, default 127.0.0.1:6379); left out, saying
#                             why, when either does not answer
#   stepgate_signin_redirect  stepgate answering an anonymous browser with the sign-in redirect
#   stepgate_2fa_session_steady
#                             the two-factor session at a fixed PROBE_RATE (not saturating),
#                             latency counted from when each request was due
#   stepgate_2fa_session_under_signin_flood
#                             the same while FLOOD_RATE wrong-password posts a second arrive,
#                             each from another address and user name (the worst case: no ban
#                             stops it); its p99 is compared with the steady case's
# wrk measures at saturation, where latency only mirrors throughput, so the flood comparison
# uses the fixed-rate probe of examples/loadgen.rs instead.
# Rounds alternate the order of the cases so drift hits all alike; figures are medians of the
# rounds. Prints a table and writes target/bench/load.json.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-1}        # nginx worker_processes and stepgate server.threads
WRK_THREADS=${WRK_THREADS:-1}
FLOOD_RATE=${FLOOD_RATE:-1000}
PROBE_RATE=${PROBE_RATE:-2000}
PIN=${PIN:-1}                # 0: let the scheduler place every process

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/bench"
WORK="$OUT/load"
mkdir -p "$OUT"
rm -rf "$WORK"
mkdir -p "$WORK"

# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
install_missing wrk nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The proxy under test (nginx proxy, pingora floor, stepgate) gets WORKERS CPUs of its own; wrk,
# the upstream and loadgen share the rest. Unpinned, the scheduler sometimes puts the proxy and
# the load on one CPU, and a round's throughput then varies by a factor of two or more. Off when
# there are no more CPUs than WORKERS.
NCPU=$(nproc)
ON_PROXY=()
ON_LOAD=()
PINNING="unpinned"
if [ "$PIN" = 1 ] && [ "$NCPU" -gt "$WORKERS" ] && command -v taskset >/dev/null; then
    ON_PROXY=(taskset -c "$((NCPU - WORKERS))-$((NCPU - 1))")
    ON_LOAD=(taskset -c "0-$((NCPU - WORKERS - 1))")
    PINNING="proxies on CPUs $((NCPU - WORKERS))-$((NCPU - 1)), load and upstream on CPUs 0-$((NCPU - WORKERS - 1))"
fi

echo "building (release)"
cargo build --release --quiet --bin stepgate --example loadgen --example pingora_floor
STEPGATE="$ROOT/target/release/stepgate"
LOADGEN="$ROOT/target/release/examples/loadgen"
FLOOR="$ROOT/target/release/examples/pingora_floor"

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

UP=$(free_port)
NG=$(free_port)
SG=$(free_port)
SH=$(free_port)
PF=$(free_port)
nginx_conf upstream "$WORKERS" "$UP" "$(upstream_server "$UP")"
nginx_conf proxy "$WORKERS" "$UP" "server { listen 127.0.0.1:$NG;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    location /auth/ { auth_request /_auth; proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    location = /_auth { internal; return 204; }
}"

"${ON_LOAD[@]}" "$NGINX" -p "$WORK" -c "$WORK/upstream.conf" >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)
"${ON_PROXY[@]}" "$NGINX" -p "$WORK" -c "$WORK/proxy.conf" >"$WORK/proxy.out" 2>&1 &
PIDS+=($!)

stepgate_conf "$SG" "$UP" "$WORKERS"
"$STEPGATE" check --config "$WORK/stepgate.toml" >/dev/null
"${ON_PROXY[@]}" "$STEPGATE" run --config "$WORK/stepgate.toml" >"$WORK/stepgate.out" 2>&1 &
PIDS+=($!)
"${ON_PROXY[@]}" "$FLOOR" "127.0.0.1:$PF" "127.0.0.1:$UP" "$WORKERS" >"$WORK/floor.out" 2>&1 &
PIDS+=($!)

# The shared-store gateway, when PostgreSQL and Redis answer.
PG_BASE=${STEPGATE_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
REDIS_ADDR=${STEPGATE_BENCH_REDIS:-127.0.0.1:6379}
SHARED_DB="stepgate_bench_$$"
SHARED=""
# One Redis command (RESP, over bash's /dev/tcp); prints the first line of the answer.
redis_cmd() { # words...
    local host=${REDIS_ADDR%:*} port=${REDIS_ADDR##*:} line="" req a
    exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
    req="*$#"$'\r\n'
    for a in "$@"; do req+="\$${#a}"$'\r\n'"$a"$'\r\n'; done
    printf '%s' "$req" >&3
    read -r -t 2 line <&3 || true
    exec 3<&-
    printf '%s\n' "${line%$'\r'}"
}
redis_answers() { [ "$(redis_cmd PING 2>/dev/null)" = "+PONG" ]; }
if ! command -v psql >/dev/null; then
    echo "leaving out stepgate_2fa_session_pg_redis: no psql to create its database"
elif ! psql "$PG_BASE/postgres" -qc "CREATE DATABASE $SHARED_DB" >/dev/null 2>"$WORK/psql.err"; then
    echo "leaving out stepgate_2fa_session_pg_redis: PostgreSQL at $PG_BASE: $(cat "$WORK/psql.err")"
elif ! redis_answers; then
    echo "leaving out stepgate_2fa_session_pg_redis: no Redis answers at $REDIS_ADDR"
    psql "$PG_BASE/postgres" -qc "DROP DATABASE $SHARED_DB" >/dev/null 2>&1 || true
else
    SHARED=1
    stepgate_conf "$SH" "$UP" "$WORKERS" shared "[store]
url = \"$PG_BASE/$SHARED_DB\"
redis_url = \"redis://$REDIS_ADDR\"
redis_prefix = \"stepgate-bench-$$:\""
    "$STEPGATE" check --config "$WORK/shared.toml" >/dev/null
    "${ON_PROXY[@]}" "$STEPGATE" run --config "$WORK/shared.toml" >"$WORK/shared.out" 2>&1 &
    PIDS+=($!)
    drop_shared_db() {
        cleanup
        psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS $SHARED_DB" >/dev/null 2>&1 || true
        redis_cmd EVAL "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end" 0 "stepgate-bench-$$:*" >/dev/null || true
    }
    trap drop_shared_db EXIT
fi

wait_port "$UP"; wait_port "$NG"; wait_port "$SG"; wait_port "$PF"
for port in "$SG" ${SHARED:+"$SH"}; do
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/_stepgate/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
done

echo "signing alice in with two-step verification"
COOKIE=$("$LOADGEN" session "http://127.0.0.1:$SG" "$WORK/data")
if [ -n "$SHARED" ]; then
    SHARED_COOKIE=$("$LOADGEN" session "http://127.0.0.1:$SH" "$WORK/shared-data")
fi
check() { # expected status, curl args...
    local want=$1; shift
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
    [ "$got" = "$want" ] || { echo "sanity check failed: $* -> $got, expected $want" >&2; exit 1; }
}
check 200 "http://127.0.0.1:$UP/x"
check 200 "http://127.0.0.1:$NG/x"
check 200 "http://127.0.0.1:$NG/auth/x"
check 200 "http://127.0.0.1:$PF/x"
check 200 "http://127.0.0.1:$SG/public/x"
check 200 -H "Cookie: $COOKIE" "http://127.0.0.1:$SG/app/x"
check 302 -H "Accept: text/html" "http://127.0.0.1:$SG/app/x"

CASES=(upstream nginx_proxy nginx_auth_request pingora_floor stepgate_bypass stepgate_2fa_session stepgate_signin_redirect stepgate_2fa_session_steady stepgate_2fa_session_under_signin_flood)
if [ -n "$SHARED" ]; then
    check 200 -H "Cookie: $SHARED_COOKIE" "http://127.0.0.1:$SH/app/x"
    CASES+=(stepgate_2fa_session_pg_redis)
fi

# wrk for one case; appends "case rps p50_ms p99_ms" to $WORK/results.
run_case() {
    local case=$1 args=()
    case $case in
        upstream) args=("http://127.0.0.1:$UP/x") ;;
        nginx_proxy) args=("http://127.0.0.1:$NG/x") ;;
        nginx_auth_request) args=("http://127.0.0.1:$NG/auth/x") ;;
        pingora_floor) args=("http://127.0.0.1:$PF/x") ;;
        stepgate_bypass) args=("http://127.0.0.1:$SG/public/x") ;;
        stepgate_2fa_session | stepgate_2fa_session_under_signin_flood)
            args=(-H "Cookie: $COOKIE" "http://127.0.0.1:$SG/app/x") ;;
        stepgate_signin_redirect) args=(-H "Accept: text/html" "http://127.0.0.1:$SG/app/x") ;;
        stepgate_2fa_session_pg_redis) args=(-H "Cookie: $SHARED_COOKIE" "http://127.0.0.1:$SH/app/x") ;;
    esac
    local secs=${DURATION%s}
    if [ "$case" = stepgate_2fa_session_steady ] || [ "$case" = stepgate_2fa_session_under_signin_flood ]; then
        local flood_pid=""
        if [ "$case" = stepgate_2fa_session_under_signin_flood ]; then
            "${ON_LOAD[@]}" "$LOADGEN" flood "http://127.0.0.1:$SG" "$FLOOD_RATE" $((secs + 2)) >>"$WORK/flood.log" 2>&1 &
            flood_pid=$!
            sleep 1
        fi
        echo "$case $("${ON_LOAD[@]}" "$LOADGEN" probe "http://127.0.0.1:$SG/app/x" "$COOKIE" "$PROBE_RATE" "$secs")" >>"$WORK/results"
        if [ -n "$flood_pid" ]; then wait "$flood_pid"; fi
        return
    fi
    "${ON_LOAD[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${args[@]}" >"$WORK/wrk.out" 2>&1
    awk -v c="$case" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000;
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0;
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000;
            return v + 0;
        }
        /Requests\/sec:/ { rps = $2 }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx or 3xx/ { bad = $5 }
        END { printf "%s %s %s %s %s\n", c, rps, p50, p99, (bad == "" ? 0 : bad) }
    ' "$WORK/wrk.out" >>"$WORK/results"
}

: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    n=${#CASES[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${CASES[$(((i + round - 1) % n))]}"); done
    # Every other round runs backwards as well as rotated.
    if [ $((round % 2)) -eq 0 ]; then
        rev=()
        for ((i = n - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done
        order=("${rev[@]}")
    fi
    echo "round $round/$ROUNDS: ${order[*]}"
    for c in "${order[@]}"; do run_case "$c"; done
done

echo
echo "load benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "rounds $ROUNDS x $DURATION, $CONNECTIONS connections, $WRK_THREADS wrk thread(s), $WORKERS worker(s) for nginx and stepgate, flood $FLOOD_RATE posts/s, probe $PROBE_RATE req/s, $PINNING"
awk -v out="$OUT/load.json" -v order="${CASES[*]}" -v probe="$PROBE_RATE" '
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " $3; p99[$1] = p99[$1] " " $4; bad[$1] += $5 }
    END {
        n = split(order, cases, " ")
        base = median(rps["nginx_proxy"])
        printf "%-40s %10s %9s %9s %9s\n", "case", "req/s", "p50 ms", "p99 ms", "vs nginx"
        printf "[\n" > out
        for (i = 1; i <= n; i++) {
            c = cases[i]; r = median(rps[c]); a = median(p50[c]); b = median(p99[c])
            ratio = (base > 0) ? r / base : 0
            printf "%-40s %10.0f %9.2f %9.2f %9.2f%s\n", c, r, a, b, ratio, (bad[c] > 0 ? "  (" bad[c] " non-2xx/3xx)" : "")
            printf "  {\"case\": \"%s\", \"rps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"ratio_vs_nginx_proxy\": %.3f}%s\n", c, r, a, b, ratio, (i < n ? "," : "") >> out
        }
        printf "]\n" >> out
        s2 = median(rps["stepgate_2fa_session"]); sb = median(rps["stepgate_bypass"]); na = median(rps["nginx_auth_request"])
        idle = median(p99["stepgate_2fa_session_steady"]); fl = median(p99["stepgate_2fa_session_under_signin_flood"])
        printf "\n2fa session / bypass: %.2f (target >= 0.95)\n", s2 / sb
        printf "2fa session / nginx auth_request: %.2f (target >= 1.2)\n", s2 / na
        pf = median(rps["pingora_floor"])
        printf "bypass / nginx proxy: %.2f; pingora alone / nginx proxy: %.2f; bypass / pingora alone: %.2f\n", sb / base, pf / base, sb / pf
        printf "p99 at %s req/s under a sign-in flood / without: %.2f (target <= 1.5)\n", probe, fl / idle
        sh = median(rps["stepgate_2fa_session_pg_redis"])
        if (sh > 0) printf "2fa session on PostgreSQL and Redis / on the embedded store: %.2f\n", sh / s2
    }
' "$WORK/results"
echo
echo "flood posts (per flood run):"
cat "$WORK/flood.log"
echo "wrote $OUT/load.json"
