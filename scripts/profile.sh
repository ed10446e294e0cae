#!/usr/bin/env bash
# Instructions per request of one ringfront worker, counted by callgrind.
#
# Builds ringfront in release mode, serves a 1 KiB file from a temporary directory with one
# worker under `valgrind --tool=callgrind`, sends a fixed number of keep-alive requests with
# h2load, and prints the worker thread's instructions divided by the requests. Callgrind counts
# instructions, not time, so the figure does not move with the machine's load. It measures the
# code's own cost, without the kernel's work.
#
# The nginx-* cases count Debian's nginx the same way: one process (no master), the same file,
# certificate and requests, and the instructions of its event loop (ngx_process_events_and_timers).
#
# Usage: scripts/profile.sh [plain|tls|redirect|nginx-plain|nginx-tls|nginx-redirect ...]
#        (default: plain, tls and redirect)
# Settings: REQUESTS (20000), CONNECTIONS (8), BASE_PORT (24500, uses BASE_PORT+1 to +3).
# The callgrind output files stay in target/profile/ (under CARGO_TARGET_DIR when set) for
# callgrind_annotate.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

REQUESTS="${REQUESTS:-20000}"
CONNECTIONS="${CONNECTIONS:-8}"
BASE_PORT="${BASE_PORT:-24500}"
cases=("$@")
if ((${#cases[@]} == 0)); then
    cases=(plain tls redirect)
fi

# Seconds to wait for the server under valgrind to listen, and for it to exit.
STARTUP_SECONDS=60
STOP_SECONDS=30

say() {
    printf 'profile: %s\n' "$*" >&2
}

fail() {
    say "$*"
    exit 1
}

missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if [[ " ${cases[*]} " == *" nginx-"* ]]; then
    command -v nginx >/dev/null 2>&1 || missing+=(nginx)
fi
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]} > 0)); then
    [[ $(id -u) -eq 0 ]] || fail "missing Debian packages: ${missing[*]}; install them and rerun"
    say "installing ${missing[*]}"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

cargo build --release --quiet
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
binary="$target_dir/release/ringfront"
out_dir="$target_dir/profile"
mkdir -p "$out_dir"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill -INT "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/static"
head -c 1024 /dev/zero | tr '\0' 'a' >"$work/static/1k.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
http_port=$((BASE_PORT + 1))
https_port=$((BASE_PORT + 2))
redirect_port=$((BASE_PORT + 3))
cat >"$work/ringfront.toml" <<EOF
[server]
workers = 1
access_log = "off"
log_level = "warn"

[http]
listen = ["127.0.0.1:$http_port"]

[https]
listen = ["127.0.0.1:$https_port"]
certificate = "$work/cert.pem"
private_key = "$work/key.pem"
server_names = ["localhost"]

[redirect]
listen = ["127.0.0.1:$redirect_port"]

[[static]]
prefix = "/static/"
dir = "$work/static"
EOF

# nginx with the static-file settings of scripts/bench.sh, as one process without a master so
# that callgrind counts the worker's instructions. That process keeps the invoking user, so it
# can read the temporary directory.
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 1s;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    client_body_temp_path $work/nginx/client_body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;

    server {
        listen 127.0.0.1:$redirect_port;
        return 301 https://\$host\$request_uri;
    }

    server {
        listen 127.0.0.1:$http_port;
        listen 127.0.0.1:$https_port ssl;
        root $work;
    }
}
EOF

for case in "${cases[@]}"; do
    case "$case" in
        plain | nginx-plain) url="http://127.0.0.1:$http_port/static/1k.txt" ;;
        tls | nginx-tls) url="https://127.0.0.1:$https_port/static/1k.txt" ;;
        redirect | nginx-redirect) url="http://127.0.0.1:$redirect_port/static/1k.txt" ;;
        *) fail "unknown case $case (expected plain, tls or redirect, alone or after nginx-)" ;;
    esac
    case "$case" in
        nginx-*)
            server=(nginx -c "$work/nginx.conf" -p "$work/nginx")
            # The event loop's inclusive count leaves out start-up, as the worker thread's does.
            counted='ngx_process_events_and_timers'
            ;;
        *)
            server=("$binary" --config "$work/ringfront.toml")
            counted=':ringfront::server::worker::run( \[|$)'
            ;;
    esac
    output="$out_dir/callgrind.$case.out"
    valgrind --tool=callgrind --callgrind-out-file="$output" "${server[@]}" >"$work/valgrind.log" 2>&1 &
    server_pid=$!
    started=""
    for _ in $(seq $((STARTUP_SECONDS * 10))); do
        if curl -sk -o /dev/null "$url"; then
            started=1
            break
        fi
        sleep 0.1
    done
    [[ -n "$started" ]] || fail "${server[0]} under valgrind did not answer $url: $(cat "$work/valgrind.log")"

    result="$(timeout 600 h2load --h1 -n "$REQUESTS" -c "$CONNECTIONS" "$url" 2>&1)" || fail "h2load failed: $result"
    grep -Eq "status codes: [0-9]+ 2xx, [0-9]+ 3xx" <<<"$result" || fail "h2load printed no status counts: $result"
    kill -INT "$server_pid"
    for _ in $(seq $((STOP_SECONDS * 10))); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$server_pid" 2>/dev/null || true
    server_pid=""

    # The worker thread's inclusive count: main-thread start-up (TLS key generation, entropy
    # seeding) and the blocking pool are left out. The one probe request above is counted too.
    worker="$(callgrind_annotate --inclusive=yes "$output" 2>/dev/null |
        awk -v pattern="$counted" '$0 ~ pattern { gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0 }
             END { if (max > 0) print max }')"
    [[ "$worker" =~ ^[0-9]+$ ]] || fail "no function matching $counted in $output"
    awk -v w="$worker" -v n="$REQUESTS" -v c="$case" \
        'BEGIN { printf "%s: %.1fk instructions per request (%d over %d requests)\n", c, w / n / 1000, w, n }'
done
