#!/usr/bin/env bash
# Side-by-side load benchmark of ringfront, nginx and H2O on loopback.
#
# Installs the tools it lacks from Debian, builds ringfront in release mode, and writes a
# document tree and a certificate into a temporary directory. Then it starts Gunicorn, ringfront,
# nginx and H2O as children of this script, runs every case against every server for ROUNDS
# rounds, and prints a Markdown table of medians and same-round ratios. Every server it starts is stopped on exit,
# on Ctrl-C and on failure. BENCHMARKS.md describes the cases and how to read the table.
#
# Settings (environment variables):
#   WORKERS           worker processes or threads of each server (2)
#   ROUNDS            rounds of every case (3)
#   DURATION          seconds of each timed wrk run (4)
#   CONNECTIONS       wrk connections (32)
#   IDLE_CONNECTIONS  idle TLS connections in the memory case (5000)
#   IDLE_WARMUP_CONNECTIONS  TLS connections opened and closed before the memory case reads the
#                     RSS it starts from (500; 0 for none)
#   SYSCALL_REQUESTS  requests sent while perf counts system calls (10000)
#   LATENCY_REQUESTS  sequential requests per latency sample (2000)
#   SERVER_CPUS       CPUs the servers run on, for taskset (0)
#   CLIENT_CPUS       CPUs the load generators and Gunicorn run on (1)
#   BASE_PORT         first of the loopback ports used, BASE_PORT+1 to BASE_PORT+22 (24400)
#   RESULTS_DIR       where results.tsv and table.md go (target/bench/DATE)
#   CASES             throughput cases to run, space-separated (all: plain_1k tls_1k
#                     tls_css_gzip tls_1m plain_16m tls_handshake tls_full_handshake redirect
#                     proxy_small)
#   MEASURES          other measurements (all: latency syscalls idle); idle runs once, before
#                     the rounds, and the others in every round
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bench_dir="$repo_root/scripts/bench"

WORKERS="${WORKERS:-2}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-4}"
CONNECTIONS="${CONNECTIONS:-32}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-5000}"
IDLE_WARMUP_CONNECTIONS="${IDLE_WARMUP_CONNECTIONS:-500}"
SYSCALL_REQUESTS="${SYSCALL_REQUESTS:-10000}"
LATENCY_REQUESTS="${LATENCY_REQUESTS:-2000}"
SERVER_CPUS="${SERVER_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-1}"
BASE_PORT="${BASE_PORT:-24400}"
CASES="${CASES:-plain_1k tls_1k tls_css_gzip tls_1m plain_16m tls_handshake tls_full_handshake redirect proxy_small}"
MEASURES="${MEASURES-latency syscalls idle}"

# Parallel openssl s_time clients in the full-handshake case.
HANDSHAKE_CLIENTS=4
# Seconds to wait for a server to start listening, and for one to exit after SIGTERM.
STARTUP_SECONDS=15
STOP_SECONDS=10
# Seconds of untimed load before the first timed run of each case on each server.
WARMUP_SECONDS=1
# Idle seconds after the last idle connection opens, before RSS is read.
IDLE_SETTLE_SECONDS=2

rf_http=$((BASE_PORT + 1))
rf_https=$((BASE_PORT + 2))
rf_redirect=$((BASE_PORT + 3))
nginx_http=$((BASE_PORT + 11))
nginx_https=$((BASE_PORT + 12))
nginx_redirect=$((BASE_PORT + 13))
h2o_http=$((BASE_PORT + 21))
h2o_https=$((BASE_PORT + 22))

say() {
    printf 'bench: %s\n' "$*" >&2
}

fail() {
    say "$*"
    exit 1
}

# 1. Tools. RUNLEVEL=1 keeps the Debian packages' install scripts from starting system-wide
# nginx or H2O services on ports 80 and 443.
install_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || missing+=(nginx)
    command -v h2o >/dev/null 2>&1 || missing+=(h2o)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        fail "missing Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and rerun"
    fi
    say "installing ${missing[*]}"
    apt-get update
    RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

install_tools
bash scripts/setup-python.sh >&2
python="$repo_root/.venv/bin/python"

# Every idle connection takes one descriptor in the client and one in the server.
if ! ulimit -n 65536 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)"
fi
if (($(ulimit -n) < IDLE_CONNECTIONS + 1024)); then
    fail "open file limit $(ulimit -n) is below IDLE_CONNECTIONS + 1024; raise ulimit -Hn or lower IDLE_CONNECTIONS"
fi

for port in "$rf_http" "$rf_https" "$rf_redirect" "$nginx_http" "$nginx_https" "$nginx_redirect" "$h2o_http" "$h2o_https"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port on 127.0.0.1 is already in use; set BASE_PORT to a free range"
    fi
done

# 2. ringfront.
say "building ringfront (release)"
cargo build --release --bin ringfront >&2
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
ringfront_bin="$target_dir/release/ringfront"
results_dir="${RESULTS_DIR:-$target_dir/bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$results_dir"
results="$results_dir/results.tsv"
printf 'round\tcase\tserver\tvalue\n' >"$results"

# 3. Documents and certificate. The directory is world-readable because nginx's workers may
# run as another user.
work="$(mktemp -d /tmp/ringfront-bench.XXXXXX)"
chmod 755 "$work"
docroot="$work/site"
static="$docroot/static"
mkdir -p "$static"
python3 "$bench_dir/make_docs.py" "$static"
head -c $((1024 * 1024)) /dev/urandom >"$static/1m.bin"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$static/16m.bin"
gzip -9 -k "$static/app.css" "$static/app.js"
chmod -R a+rX "$docroot"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 30 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
chmod 644 "$work/key.pem"

# 4. Process management.
pids=()
names=()

stop_process() {
    local name="$1" pid="$2"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((tick = 0; tick < STOP_SECONDS * 10; tick++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) did not exit within ${STOP_SECONDS}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local index
    for ((index = ${#pids[@]} - 1; index >= 0; index--)); do
        stop_process "${names[index]}" "${pids[index]}"
    done
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in its own session on the given CPUs and records its pid under a name.
start_process() {
    local name="$1" cpus="$2"
    shift 2
    setsid taskset -c "$cpus" "$@" >"$work/$name.out" 2>&1 &
    pids+=("$!")
    names+=("$name")
}

pid_of() {
    local name="$1" index
    for index in "${!names[@]}"; do
        if [[ "${names[index]}" == "$name" ]]; then
            echo "${pids[index]}"
            return 0
        fi
    done
    return 1
}

wait_for_port() {
    local name="$1" port="$2" pid
    pid="$(pid_of "$name")"
    for ((tick = 0; tick < STARTUP_SECONDS * 10; tick++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$work/$name.out" >&2
            fail "$name exited during startup; its output is above"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "$name did not listen on 127.0.0.1:$port within ${STARTUP_SECONDS}s"
}

# 5. Gunicorn: one gthread worker with 4 threads, which keeps upstream connections alive.
socket="$work/gunicorn.sock"
start_process gunicorn "$CLIENT_CPUS" "$repo_root/.venv/bin/gunicorn" --chdir "$bench_dir" \
    --bind "unix:$socket" --workers 1 --worker-class gthread --threads 4 --no-control-socket app:app
for ((tick = 0; tick < STARTUP_SECONDS * 10; tick++)); do
    [[ -S "$socket" ]] && break
    sleep 0.1
done
[[ -S "$socket" ]] || fail "Gunicorn did not create $socket within ${STARTUP_SECONDS}s"
chmod 666 "$socket"

# 6. Server configurations: the same workers, certificate, documents and upstream for each,
# access logs off, keep-alive on with no cap on requests per connection.
cat >"$work/ringfront.toml" <<EOF
[server]
workers = $WORKERS
access_log = "off"
log_level = "warn"

[redirect]
listen = ["127.0.0.1:$rf_redirect"]

[https]
listen = ["127.0.0.1:$rf_https"]
certificate = "$work/cert.pem"
private_key = "$work/key.pem"
server_names = ["localhost"]

[http]
listen = ["127.0.0.1:$rf_http"]

[[static]]
prefix = "/static/"
dir = "$static"

[upstream]
unix = "$socket"
keepalive = 16
keepalive_timeout = "1s"
EOF

nginx_user=""
if [[ $(id -u) -eq 0 ]]; then
    nginx_user="user root;"
fi
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<EOF
$nginx_user
worker_processes $WORKERS;
worker_rlimit_nofile 65536;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events {
    worker_connections 16384;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 1s;
    gzip_static on;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    client_body_temp_path $work/nginx/client_body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;

    upstream gunicorn {
        server unix:$socket;
        keepalive 16;
        keepalive_timeout 1s;
    }

    server {
        listen 127.0.0.1:$nginx_redirect reuseport;
        server_name localhost;
        return 301 https://\$host\$request_uri;
    }

    server {
        listen 127.0.0.1:$nginx_http reuseport;
        listen 127.0.0.1:$nginx_https ssl reuseport;
        server_name localhost;
        root $docroot;

        location /static/ {
        }

        location / {
            proxy_pass http://gunicorn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF

# OCSP stapling is off because a self-signed certificate names no OCSP responder, and H2O would
# otherwise run a helper that tries to reach one.
h2o_user=""
if [[ $(id -u) -eq 0 ]]; then
    h2o_user="user: root"
fi
cat >"$work/h2o.conf" <<EOF
$h2o_user
num-threads: $WORKERS
max-connections: 16384
http1-request-timeout: 75
pid-file: $work/h2o.pid
error-log: $work/h2o-error.log
listen:
  host: 127.0.0.1
  port: $h2o_http
listen:
  host: 127.0.0.1
  port: $h2o_https
  ssl:
    certificate-file: $work/cert.pem
    key-file: $work/key.pem
    minimum-version: TLSv1.2
    ocsp-update-interval: 0
hosts:
  "localhost":
    paths:
      "/static":
        file.dir: $static
        file.send-compressed: ON
EOF

"$ringfront_bin" check --config "$work/ringfront.toml" >&2
nginx -t -q -e "$work/nginx/error.log" -c "$work/nginx.conf" >&2
h2o -m test -c "$work/h2o.conf" >/dev/null

start_process ringfront "$SERVER_CPUS" "$ringfront_bin" --config "$work/ringfront.toml"
start_process nginx "$SERVER_CPUS" nginx -e "$work/nginx/error.log" -c "$work/nginx.conf"
start_process h2o "$SERVER_CPUS" h2o -c "$work/h2o.conf"
for name_port in "ringfront:$rf_https" "ringfront:$rf_redirect" "ringfront:$rf_http" \
    "nginx:$nginx_https" "nginx:$nginx_redirect" "nginx:$nginx_http" "h2o:$h2o_https" "h2o:$h2o_http"; do
    wait_for_port "${name_port%%:*}" "${name_port##*:}"
done

# 7. Cases. Each case has a URL per server, extra request headers, and a check of one response.

# Prints the URL of a case on a server.
case_url() {
    local case="$1" server="$2" http https redirect
    case "$server" in
        ringfront) http=$rf_http https=$rf_https redirect=$rf_redirect ;;
        nginx) http=$nginx_http https=$nginx_https redirect=$nginx_redirect ;;
        h2o) http=$h2o_http https=$h2o_https redirect="" ;;
    esac
    case "$case" in
        plain_1k) echo "http://127.0.0.1:$http/static/1k.txt" ;;
        tls_1k | tls_handshake | tls_full_handshake) echo "https://127.0.0.1:$https/static/1k.txt" ;;
        tls_css_gzip) echo "https://127.0.0.1:$https/static/app.css" ;;
        tls_1m) echo "https://127.0.0.1:$https/static/1m.bin" ;;
        plain_16m) echo "http://127.0.0.1:$http/static/16m.bin" ;;
        redirect) echo "http://127.0.0.1:$redirect/account/settings?tab=profile" ;;
        proxy_small) echo "https://127.0.0.1:$https/small" ;;
    esac
}

# Prints the request headers of a case, one per line.
case_headers() {
    echo "Host: localhost"
    case "$1" in
        tls_css_gzip) echo "Accept-Encoding: gzip" ;;
        tls_handshake) echo "Connection: close" ;;
    esac
}

# Prints the servers that run a case: H2O serves only the static cases.
case_servers() {
    case "$1" in
        redirect | proxy_small) echo "ringfront nginx" ;;
        *) echo "ringfront nginx h2o" ;;
    esac
}

# Fetches one response of a case with curl and fails unless its status, headers and body are
# the expected ones.
check_case() {
    local case="$1" server="$2" url status header_args=()
    url="$(case_url "$case" "$server")"
    while IFS= read -r header; do
        header_args+=(-H "$header")
    done < <(case_headers "$case")
    status="$(curl -sk --max-time 30 "${header_args[@]}" -D "$work/check.head" -o "$work/check.body" \
        -w '%{http_code}' "$url")" || fail "$case on $server: curl failed for $url"

    case "$case" in
        redirect)
            [[ "$status" == 301 ]] || fail "$case on $server: status $status, expected 301"
            grep -qi '^location: https://localhost[:0-9]*/account/settings?tab=profile' "$work/check.head" ||
                fail "$case on $server: Location is not the https URL of the request"
            return 0
            ;;
    esac

    [[ "$status" == 200 ]] || fail "$case on $server: status $status, expected 200"
    case "$case" in
        plain_1k | tls_1k | tls_handshake | tls_full_handshake) cmp -s "$work/check.body" "$static/1k.txt" ;;
        tls_1m) cmp -s "$work/check.body" "$static/1m.bin" ;;
        plain_16m) cmp -s "$work/check.body" "$static/16m.bin" ;;
        tls_css_gzip)
            grep -qi '^content-encoding: *gzip' "$work/check.head" ||
                fail "$case on $server: the response is not gzip-encoded"
            gzip -dc <"$work/check.body" | cmp -s - "$static/app.css"
            ;;
        proxy_small) [[ $(stat -c %s "$work/check.body") -eq 100 ]] ;;
    esac || fail "$case on $server: the body differs from the expected document"
}

# Runs wrk for a case and prints requests per second. Fails on any response that is not 2xx
# or 3xx, since a fast error page must never count as throughput.
run_wrk() {
    local case="$1" server="$2" seconds="$3" url header_args=() output rate
    url="$(case_url "$case" "$server")"
    while IFS= read -r header; do
        header_args+=(-H "$header")
    done < <(case_headers "$case")
    output="$(taskset -c "$CLIENT_CPUS" timeout $((seconds + 30)) wrk -t1 -c"$CONNECTIONS" \
        -d"${seconds}s" --timeout 10s "${header_args[@]}" "$url" 2>&1)" || fail "$case on $server: wrk failed: $output"
    if grep -q 'Non-2xx or 3xx responses' <<<"$output"; then
        fail "$case on $server: error responses during the run: $output"
    fi
    if grep -q 'Socket errors' <<<"$output"; then
        say "$case on $server: $(grep 'Socket errors' <<<"$output")"
    fi
    rate="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$output")"
    [[ -n "$rate" ]] || fail "$case on $server: no Requests/sec in wrk output: $output"
    echo "$rate"
}

# Runs HANDSHAKE_CLIENTS openssl s_time clients for a case, each making a new TLS session
# (a full handshake) per connection and one HTTP/1.0 request on it, and prints connections per
# second. wrk and h2load resume sessions with tickets, so they measure resumed handshakes only.
run_s_time() {
    local case="$1" server="$2" seconds="$3" url address path started elapsed index clients=() total=0
    url="$(case_url "$case" "$server")"
    address="${url#https://}"
    path="/${address#*/}"
    address="${address%%/*}"
    started="$(date +%s.%N)"
    for ((index = 0; index < HANDSHAKE_CLIENTS; index++)); do
        taskset -c "$CLIENT_CPUS" timeout $((seconds + 30)) openssl s_time -connect "$address" -new \
            -www "$path" -time "$seconds" >"$work/s_time.$index" 2>&1 &
        clients+=("$!")
    done
    for index in "${!clients[@]}"; do
        wait "${clients[index]}" || fail "$case on $server: openssl s_time failed: $(tail -3 "$work/s_time.$index")"
    done
    elapsed="$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
    for ((index = 0; index < HANDSHAKE_CLIENTS; index++)); do
        local connections bytes
        read -r connections bytes < <(awk '/real seconds/ { print $1, $(NF - 4) }' "$work/s_time.$index")
        [[ -n "$connections" ]] || fail "$case on $server: no summary from openssl s_time: $(tail -3 "$work/s_time.$index")"
        ((bytes >= 1024)) || fail "$case on $server: only $bytes bytes read per connection"
        total=$((total + connections))
    done
    awk -v n="$total" -v t="$elapsed" 'BEGIN { printf "%.2f", n / t }'
}

# Runs the load generator of a case and prints its rate.
run_load() {
    case "$1" in
        tls_full_handshake) run_s_time "$@" ;;
        *) run_wrk "$@" ;;
    esac
}

# Prints the user and the system CPU time used so far by a server's processes, all threads
# included, in clock ticks.
cpu_ticks() {
    local user=0 system=0 pid ticks
    for pid in $(process_tree "$(pid_of "$1")"); do
        # Fields 14 and 15 of /proc/PID/stat are utime and stime. The awk field numbers are right
        # because the command names of these servers (field 2) contain no spaces.
        ticks=($(awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null || true))
        user=$((user + ${ticks[0]:-0}))
        system=$((system + ${ticks[1]:-0}))
    done
    echo "$user $system"
}

record() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"
}

# Prints the pid of a process and of all its descendants.
process_tree() {
    local pid="$1" child
    echo "$pid"
    for child in $(ps -o pid= --ppid "$pid"); do
        process_tree "$child"
    done
}

# Prints the resident set size of a server's processes together, in KiB.
rss_kib() {
    local total=0 pid kib
    for pid in $(process_tree "$(pid_of "$1")"); do
        kib="$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

https_port_of() {
    case "$1" in
        ringfront) echo "$rf_https" ;;
        nginx) echo "$nginx_https" ;;
        h2o) echo "$h2o_https" ;;
    esac
}

# Opens COUNT idle TLS connections to SERVER with scripts/bench/idle.py, which keeps them open until
# it is stopped, and sets idle_client to its PID once all are open.
open_idle_connections() {
    local server="$1" count="$2" ready="" tick
    : >"$work/idle.out"
    taskset -c "$CLIENT_CPUS" "$python" "$bench_dir/idle.py" 127.0.0.1 "$(https_port_of "$server")" \
        /static/1k.txt "$count" >"$work/idle.out" 2>"$work/idle.err" &
    idle_client=$!
    for ((tick = 0; tick < 1500; tick++)); do
        ready="$(cat "$work/idle.out")"
        [[ -n "$ready" ]] && break
        kill -0 "$idle_client" 2>/dev/null || break
        sleep 0.1
    done
    if [[ "$ready" != "ready $count" ]]; then
        close_idle_connections
        fail "idle connections to $server: $(cat "$work/idle.err")"
    fi
}

close_idle_connections() {
    kill -TERM "$idle_client" 2>/dev/null || true
    wait "$idle_client" 2>/dev/null || true
}

# Memory per idle TLS keep-alive connection: (RSS with the connections open - RSS before) /
# connections, in KiB. A first round of IDLE_WARMUP_CONNECTIONS connections, opened and closed
# before the RSS to start from is read, takes out what each server sets up once: the code
# pages of its TLS path, its allocator's first arenas and its pools.
measure_idle() {
    local round="$1" server="$2" before after per_connection
    if ((IDLE_WARMUP_CONNECTIONS > 0)); then
        open_idle_connections "$server" "$IDLE_WARMUP_CONNECTIONS"
        close_idle_connections
        sleep "$IDLE_SETTLE_SECONDS"
    fi
    before="$(rss_kib "$server")"
    open_idle_connections "$server" "$IDLE_CONNECTIONS"
    sleep "$IDLE_SETTLE_SECONDS"
    after="$(rss_kib "$server")"
    close_idle_connections
    per_connection="$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNECTIONS" 'BEGIN { printf "%.2f", (a - b) / n }')"
    say "round $round idle_kib_per_conn $server: $per_connection KiB ($before KiB before, $after KiB with $IDLE_CONNECTIONS connections)"
    record "$round" idle_kib_per_conn "$server" "$per_connection"
    # The servers close the aborted connections at their own pace; let them before the next case.
    sleep 1
}

# System calls per request: perf counts the system-call entries of every thread of the server
# (the raw_syscalls:sys_enter tracepoint) while h2load sends SYSCALL_REQUESTS requests over
# keep-alive connections. It runs twice: with CONNECTIONS connections, the concurrency of the
# TLS 1 KiB case (recorded as syscalls_per_req), and with 4 (syscalls_per_req_4conn), where an
# io_uring server has fewer completions to gather per system call. A tracepoint counter does
# not stop the traced threads as strace does, so the server runs at its usual pace.
measure_syscalls() {
    local round="$1" server="$2" connections="$3" metric="$4" tids=() pid task counter output calls uring per_request
    for pid in $(process_tree "$(pid_of "$server")"); do
        for task in /proc/"$pid"/task/*; do
            tids+=("${task##*/}")
        done
    done
    perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter \
        -t "$(IFS=,; echo "${tids[*]}")" -o "$work/perf.out" 2>"$work/perf.err" &
    counter=$!
    sleep 1
    output="$(taskset -c "$CLIENT_CPUS" timeout 120 h2load --h1 -n "$SYSCALL_REQUESTS" -c "$connections" \
        "https://127.0.0.1:$(https_port_of "$server")/static/1k.txt" 2>&1)" || {
        kill -INT "$counter" 2>/dev/null || true
        wait "$counter" 2>/dev/null || true
        fail "h2load against $server failed: $output"
    }
    kill -INT "$counter" 2>/dev/null || true
    wait "$counter" 2>/dev/null || true
    if ! grep -q "status codes: $SYSCALL_REQUESTS 2xx" <<<"$output"; then
        fail "h2load against $server: not every response was 2xx: $output"
    fi
    calls="$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$work/perf.out")"
    uring="$(awk -F, '$3 == "syscalls:sys_enter_io_uring_enter" { print $1 }' "$work/perf.out")"
    [[ "$calls" =~ ^[0-9]+$ ]] || fail "perf counted no system calls for $server: $(cat "$work/perf.out" "$work/perf.err")"
    per_request="$(awk -v c="$calls" -v n="$SYSCALL_REQUESTS" 'BEGIN { printf "%.3f", c / n }')"
    say "round $round $metric $server: $per_request ($calls calls, $uring of them io_uring_enter, for $SYSCALL_REQUESTS requests over $connections connections)"
    cp "$work/perf.out" "$results_dir/syscalls-$server-${connections}conn-round$round.txt"
    record "$round" "$metric" "$server" "$per_request"
}

# Median latency of GET /small through a proxy over TLS, and straight to Gunicorn's socket.
measure_latency() {
    local round="$1" target="$2" output
    if [[ "$target" == direct ]]; then
        output="$(taskset -c "$CLIENT_CPUS" "$python" "$bench_dir/latency.py" unix "$socket" /small "$LATENCY_REQUESTS")" ||
            fail "latency straight to Gunicorn failed"
    else
        output="$(taskset -c "$CLIENT_CPUS" "$python" "$bench_dir/latency.py" tls 127.0.0.1 \
            "$(https_port_of "$target")" /small "$LATENCY_REQUESTS")" || fail "latency through $target failed"
    fi
    say "round $round proxy_latency_us $target: median, p90, samples: $output"
    record "$round" proxy_latency_us "$target" "${output%% *}"
}

# 8. Machine description, for the record.
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel: $(uname -r)"
    echo "nginx: $(nginx -v 2>&1)"
    echo "h2o: $(h2o --version 2>&1 | head -1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "h2load: $(h2load --version 2>&1 | head -1)"
    echo "ringfront: $(git -C "$repo_root" rev-parse --short HEAD)"
    echo "settings: WORKERS=$WORKERS ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS SERVER_CPUS=$SERVER_CPUS CLIENT_CPUS=$CLIENT_CPUS"
    echo "load before: $(uptime)"
} >"$results_dir/machine.txt"
cat "$results_dir/machine.txt" >&2

clock_ticks="$(getconf CLK_TCK)"
read -r -a cases <<<"$CASES"
for case in "${cases[@]}"; do
    [[ -n "$(case_url "$case" ringfront)" ]] || fail "unknown case $case in CASES"
done

say "checking one response of every case on every server"
for case in "${cases[@]}"; do
    for server in $(case_servers "$case"); do
        check_case "$case" "$server"
    done
done

# 9. Idle memory, once per server and before any load. Memory that a process frees stays in its
# allocator. So once a first batch of connections has closed, a second batch reuses that memory
# and the RSS barely grows, whatever each connection costs.
if [[ " $MEASURES " == *" idle "* ]]; then
    for server in ringfront nginx h2o; do
        measure_idle 1 "$server"
    done
fi

# 10. Rounds. Odd rounds run the servers in one order and even rounds in the reverse order, so a
# drift in machine load during a round does not always favour the same server.
for ((round = 1; round <= ROUNDS; round++)); do
    for case in "${cases[@]}"; do
        servers=($(case_servers "$case"))
        if ((round % 2 == 0)); then
            servers=($(printf '%s\n' "${servers[@]}" | tac))
        fi
        for server in "${servers[@]}"; do
            if ((round == 1)); then
                run_load "$case" "$server" "$WARMUP_SECONDS" >/dev/null
            fi
            read -r user_before system_before < <(cpu_ticks "$server")
            started="$(date +%s.%N)"
            rate="$(run_load "$case" "$server" "$DURATION")"
            ended="$(date +%s.%N)"
            read -r user_after system_after < <(cpu_ticks "$server")
            user=$((user_after - user_before))
            system=$((system_after - system_before))
            cores="$(awk -v t="$((user + system))" -v hz="$clock_ticks" -v s="$started" -v e="$ended" \
                'BEGIN { printf "%.3f", t / hz / (e - s) }')"
            say "round $round $case $server: $rate per second, server CPU $cores cores"
            record "$round" "$case" "$server" "$rate"
            record "$round" "cpu:$case" "$server" "$cores"
            # CPU time per request, in user space and in the kernel: the rate times the wall time
            # of the run is the number of requests.
            for part in user system; do
                record "$round" "$part-us:$case" "$server" "$(awk -v t="${!part}" -v hz="$clock_ticks" \
                    -v r="$rate" -v s="$started" -v e="$ended" 'BEGIN { printf "%.2f", t / hz * 1e6 / (r * (e - s)) }')"
            done
        done
    done

    if [[ " $MEASURES " == *" latency "* ]]; then
        for target in direct ringfront nginx; do
            measure_latency "$round" "$target"
        done
    fi
    if [[ " $MEASURES " == *" syscalls "* ]]; then
        for server in ringfront nginx h2o; do
            measure_syscalls "$round" "$server" "$CONNECTIONS" syscalls_per_req
            measure_syscalls "$round" "$server" 4 syscalls_per_req_4conn
        done
    fi
done

echo "load after: $(uptime)" >>"$results_dir/machine.txt"
"$python" "$bench_dir/report.py" "$results" | tee "$results_dir/table.md"
say "raw results in $results, table in $results_dir/table.md"
