#!/usr/bin/env bash
# Instructions per request: the proxy's user-space cost, counted by valgrind (callgrind), so the
# same build gives the same figure however busy the machine is. wrk figures (benches/load.sh)
# are what a user sees, but on a shared machine rounds can vary by a factor of several; this
# shows whether a change made the hot path cheaper, and by how much.
#
#   bash benches/instructions.sh          # about 2 minutes
#
# Cases: pingora_floor (pingora alone, examples/pingora_floor.rs), stepgate_bypass,
# stepgate_2fa_session (identity headers and assertion included) and stepgate_signin_redirect,
# each against the same nginx upstream. Each runs twice under callgrind, with N1 and N2
# requests on one keep-alive connection after a warm-up; the difference divided by N2 - N1 is
# one request's cost, start-up and sign-in cancelling out. The kernel's share (system calls,
# loopback TCP) is not counted. Prints a table and writes target/bench/instructions.json.
set -euo pipefail

N1=${N1:-200}
N2=${N2:-2200}

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/bench"
WORK="$OUT/instructions"
rm -rf "$WORK"
mkdir -p "$WORK"

# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
install_missing valgrind nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building (release)"
cargo build --release --quiet --bin stepgate --example loadgen --example pingora_floor
STEPGATE="$ROOT/target/release/stepgate"
LOADGEN="$ROOT/target/release/examples/loadgen"
FLOOR="$ROOT/target/release/examples/pingora_floor"

wait_http() { # url: waits until it answers (valgrind starts slowly)
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}

UP=$(free_port)
PORT=$(free_port)
nginx_conf upstream 1 "$UP" "$(upstream_server "$UP")"
"$NGINX" -p "$WORK" -c "$WORK/upstream.conf" >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)

stepgate_conf "$PORT" "$UP" 1

# The same URL n times: curl sends them one after another on one connection.
urls() { for _ in $(seq 1 "$2"); do printf '%s\n' "$1"; done; }

# Total instructions of one run of a case with n measured requests.
run() { # case n
    local case=$1 n=$2 pid url header="X-Bench: 1" expect=200
    rm -rf "$WORK/data" "$WORK/callgrind.out"
    if [ "$case" = pingora_floor ]; then
        valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
            "$FLOOR" "127.0.0.1:$PORT" "127.0.0.1:$UP" 1 >"$WORK/valgrind.log" 2>&1 &
        pid=$!
        url="http://127.0.0.1:$PORT/x"
        wait_http "$url"
    else
        valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
            "$STEPGATE" run --config "$WORK/stepgate.toml" >"$WORK/valgrind.log" 2>&1 &
        pid=$!
        wait_http "http://127.0.0.1:$PORT/_stepgate/health"
        case $case in
            stepgate_bypass) url="http://127.0.0.1:$PORT/public/x" ;;
            stepgate_2fa_session)
                url="http://127.0.0.1:$PORT/app/x"
                header="Cookie: $("$LOADGEN" session "http://127.0.0.1:$PORT" "$WORK/data")" ;;
            stepgate_signin_redirect)
                url="http://127.0.0.1:$PORT/app/x"
                header="Accept: text/html"
                expect=302 ;;
        esac
    fi
    urls "$url" 100 | xargs curl -s -o /dev/null -H "$header" >/dev/null
    local codes
    codes=$(urls "$url" "$n" | sed 's/^/url = /; s/$/\noutput = \/dev\/null/' |
        curl -s -H "$header" -K - -w '%{http_code}\n' | sort | uniq -c | awk '{print $2 ":" $1}' | tr '\n' ' ')
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    if [ "$codes" != "$expect:$n " ]; then
        echo "$case: expected $n answers $expect, got $codes" >&2
        exit 1
    fi
    awk '/^totals:/ {print $2; exit}' "$WORK/callgrind.out"
}

CASES=(pingora_floor stepgate_bypass stepgate_2fa_session stepgate_signin_redirect)
printf '[\n' >"$OUT/instructions.json"
printf '%-28s %14s %14s\n' case "instr/request" "vs bypass"
declare -A PER
for case in "${CASES[@]}"; do
    a=$(run "$case" "$N1")
    b=$(run "$case" "$N2")
    PER[$case]=$(((b - a) / (N2 - N1)))
done
for i in "${!CASES[@]}"; do
    case=${CASES[$i]}
    ratio=$(awk -v x="${PER[$case]}" -v y="${PER[stepgate_bypass]}" 'BEGIN {printf "%.3f", x / y}')
    printf '%-28s %14s %14s\n' "$case" "${PER[$case]}" "$ratio"
    sep=","
    [ "$i" -eq $((${#CASES[@]} - 1)) ] && sep=""
    printf '  {"case": "%s", "instructions_per_request": %s, "ratio_vs_bypass": %s}%s\n' \
        "$case" "${PER[$case]}" "$ratio" "$sep" >>"$OUT/instructions.json"
done
printf ']\n' >>"$OUT/instructions.json"
echo "($N2 - $N1 requests, user space only; valgrind $(valgrind --version | sed 's/valgrind-//'))"
echo "wrote $OUT/instructions.json"
