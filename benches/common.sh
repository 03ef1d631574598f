# Shared by benches/load.sh and benches/instructions.sh (sourced, not run). Expects ROOT (the
# repository) and WORK (a fresh directory for this run's files) to be set.

# Installs the Debian packages of the given commands when they are missing.
install_missing() { # command...
    local need=() c
    for c in "$@"; do
        command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || need+=("$c")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    echo "installing ${need[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

# A free loopback port: one nothing answers on.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# Processes to stop when the script ends.
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# An nginx configuration $WORK/NAME.conf with WORKERS workers, an `app` upstream block for
# 127.0.0.1:UPSTREAM_PORT, and the given server blocks.
nginx_conf() { # name, workers, upstream port, server blocks
    local user_line=""
    [ "$(id -u)" -eq 0 ] && user_line="user root;"
    cat >"$WORK/$1.conf" <<CONF
$user_line
worker_processes $2;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1-body;
    proxy_temp_path $WORK/$1-proxy;
    fastcgi_temp_path $WORK/$1-fcgi;
    uwsgi_temp_path $WORK/$1-uwsgi;
    scgi_temp_path $WORK/$1-scgi;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$3; keepalive 128; }
    $4
}
CONF
}

# The upstream both benchmarks proxy to: a small fixed body.
upstream_server() { # port
    echo "server { listen 127.0.0.1:$1; location / { default_type text/plain; return 200 'hello from the upstream\n'; } }"
}

# The benchmark gateway's configuration $WORK/NAME.toml (default `stepgate`, data in $WORK/data,
# other names in $WORK/NAME-data): one app on the upstream, `/public/` bypassed, everything else
# two-factor, plus any EXTRA TOML (a `[store]` table, say).
stepgate_conf() { # listen port, upstream port, threads[, name, extra TOML]
    local name=${4:-stepgate} data="$WORK/data"
    [ "$name" != stepgate ] && data="$WORK/$name-data"
    cat >"$WORK/$name.toml" <<CONF
${5:-}
[server]
data_dir = "$data"
threads = $3
grace_period = "1s"
shutdown_timeout = "1s"
# The flood case sends each post "from" another address through X-Forwarded-For.
trusted_proxies = ["127.0.0.1"]

[log]
level = "warn"
access_log = false

[users]
file = "$ROOT/config/quickstart-users.toml"

[regulation]
form_posts_per_minute = 100000

[[listener]]
address = "127.0.0.1:$1"

[[app]]
id = "app"
hosts = ["127.0.0.1"]
upstreams = ["http://127.0.0.1:$2"]

[[rule]]
path = "^/public/"
policy = "bypass"

[[rule]]
policy = "two_factor"
CONF
}
