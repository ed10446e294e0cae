#!/usr/bin/env bash
# Scans ringfront's TLS listener with testssl.sh and writes a summary to
# docs/testssl-summary.txt: protocols, cipher categories and suites, session resumption and
# the vulnerability checks.
#
# ringfront runs with a self-signed ECDSA P-256 certificate on a loopback port, and testssl.sh
# targets 127.0.0.1 only, with DNS lookups and CRL/OCSP downloads off. Both run inside a new
# network namespace whose only interface is loopback (this needs root for `unshare --net`), so
# nothing can leave the machine. The scan runs under `strace`, and the script stops without a
# summary if testssl.sh or a tool it runs connects anywhere other than loopback or a Unix
# socket.
#
# NOTE: testssl.sh 3.0.8 (Debian bookworm) probes the local openssl's features with
# `openssl s_client -connect invalid.`, which makes the resolver send DNS queries even with
# `--nodns none`. The namespace blocks them and this script then stops, so with that version
# no summary is written.
#
# Exits non-zero if a protocol below TLS 1.2 is offered or testssl.sh finds a weak cipher (NULL,
# anonymous, EXPORT, LOW, RC4, 3DES, or a CBC suite it flags). Installs Debian's testssl.sh
# package when the `testssl` command is missing.
#
# Settings (environment variables): TESTSSL_BINARY, the ringfront binary to scan
# [target/debug/ringfront, built if missing]; TESTSSL_SECONDS, the limit on the scan [600].
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

summary="$repo_root/docs/testssl-summary.txt"
binary="${TESTSSL_BINARY:-target/debug/ringfront}"
TESTSSL_SECONDS="${TESTSSL_SECONDS:-600}"

say() {
    printf 'testssl: %s\n' "$*"
}

if ! command -v testssl >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        say "the testssl command is missing; install it (Debian: apt-get install testssl.sh) and rerun" >&2
        exit 1
    fi
    say "installing Debian's testssl.sh package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh
fi
for tool in openssl strace python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "the $tool command is missing; install it and rerun" >&2
        exit 1
    fi
done

if [[ -z "${TESTSSL_BINARY:-}" ]]; then
    cargo build --bin ringfront
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rf-testssl-XXXXXX")"
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/ringfront.toml" <<TOML
[server]
workers = 1
access_log = "off"
log_level = "warn"

[https]
listen = ["127.0.0.1:$port"]
certificate = "cert.pem"
private_key = "key.pem"
server_names = ["localhost"]
TOML

# The part that runs inside the network namespace: start ringfront, scan it, stop it. It takes
# the binary, the work directory and the port as arguments.
cat >"$work/scan.sh" <<'SCAN'
#!/usr/bin/env bash
set -euo pipefail
binary="$1"
work="$2"
port="$3"
seconds="$4"

# A new network namespace starts with its loopback interface down.
ip link set lo up

"$binary" --config "$work/ringfront.toml" >"$work/ringfront.log" 2>&1 &
ringfront_pid=$!
stop() {
    kill -TERM "$ringfront_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$ringfront_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$ringfront_pid" 2>/dev/null || true
    wait "$ringfront_pid" 2>/dev/null || true
}
trap stop EXIT

for attempt in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$ringfront_pid" 2>/dev/null || [[ $attempt -eq 150 ]]; then
        echo "testssl: ringfront did not start listening on port $port:" >&2
        cat "$work/ringfront.log" >&2
        exit 1
    fi
    sleep 0.1
done

# --ip and --nodns none turn off testssl.sh's own lookups of the target (its openssl probes
# still resolve a name, see the NOTE at the top). Without --phone-out, testssl.sh downloads no
# CRL and queries no OCSP responder. -E lists the suites per protocol on top of the default
# run (protocols, cipher categories, server defaults, preferences, vulnerabilities).
status=0
timeout --signal=TERM --kill-after=10 "$seconds" \
    strace -f -qq --seccomp-bpf -e trace=connect -o "$work/connect.trace" \
    testssl --quiet --color 0 --warnings batch --nodns none --ip 127.0.0.1 \
    --connect-timeout 5 --openssl-timeout 5 -E \
    --jsonfile "$work/scan.json" --logfile "$work/scan.log" \
    "127.0.0.1:$port" >"$work/scan.out" 2>&1 || status=$?
exit "$status"
SCAN
chmod +x "$work/scan.sh"

if ! unshare --net true 2>/dev/null; then
    say "cannot create a network namespace (unshare --net needs root); not scanning, because" >&2
    say "testssl.sh may send DNS queries whatever its flags say" >&2
    exit 1
fi
say "scanning ringfront ($binary) on 127.0.0.1:$port in a network namespace with loopback only"
scan_status=0
unshare --net "$work/scan.sh" "$binary" "$work" "$port" "$TESTSSL_SECONDS" || scan_status=$?

# Every connect() must go to loopback or to a Unix socket. strace writes, for example,
# connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("127.0.0.1")}, 16).
# The openssl feature probes of testssl.sh also connect to its default, port 4433 on ::1.
outside="$(grep -E 'sa_family=AF_INET6?' "$work/connect.trace" |
    grep -v -e 'inet_addr("127\.0\.0\.1")' -e 'inet_pton(AF_INET6, "::1"' || true)"
if [[ -n "$outside" ]]; then
    say "testssl.sh tried to reach the network outside loopback, which the namespace blocked;" >&2
    say "stopping without a summary. The connect calls:" >&2
    printf '%s\n' "$outside" | sort -u -k2 | head -n 10 >&2
    exit 1
fi

if [[ ! -s "$work/scan.json" ]]; then
    say "testssl.sh produced no findings (exit status $scan_status):" >&2
    tail -n 40 "$work/scan.out" >&2
    exit 1
fi

# testssl.sh exits with the number of errors and ambiguous results (testssl(1), EXIT STATUS).
# A non-zero status alone therefore does not mean the scan failed, so the checks below read the
# findings themselves.
python3 - "$work/scan.json" "$summary" "$scan_status" "$(testssl --version 2>/dev/null |
    grep -m1 -oE 'testssl +[0-9][^ ]*' || echo testssl)" <<'PY'
import json
import sys

findings_path, summary_path, scan_status, version = sys.argv[1:5]
with open(findings_path, encoding="utf-8") as file:
    findings = json.load(file)

def rows(prefixes):
    """Return the findings whose id starts with one of `prefixes`, in scan order."""
    return [f for f in findings if any(f["id"].startswith(p) for p in prefixes)]

def line(finding):
    return f'{finding["id"]:<32} {finding["severity"]:<8} {finding["finding"]}'

protocols = rows(["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "NPN", "ALPN"])
categories = rows(["cipherlist_"])
# testssl.sh 3.0.8 names each offered suite cipher_xHHHH after its code point, and the
# forward secrecy findings PFS, PFS_ciphers and PFS_ECDHE_curves.
suites = rows(["cipher_x"])
order = rows(["cipher_order", "cipherorder_", "protocol_negotiated", "cipher_negotiated"])
resumption = rows(["sessionresumption_", "TLS_session_ticket"])
groups = rows(["PFS"])
vulnerabilities = rows(["heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego",
                        "secure_client_renego", "CRIME_TLS", "BREACH", "POODLE_SSL",
                        "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST",
                        "LUCKY13", "RC4"])

failures = []
for finding in protocols:
    if finding["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1") and \
            not finding["finding"].startswith("not offered"):
        failures.append(f'{finding["id"]} is offered: {finding["finding"]}')
weak_categories = ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                   "cipherlist_3DES_IDEA")
for finding in categories:
    if finding["id"] in weak_categories and not finding["finding"].startswith("not offered"):
        failures.append(f'{finding["id"]}: {finding["finding"]}')
    # AVERAGE is testssl.sh's category of CBC suites. Offering them fails the check only when
    # testssl.sh rates them above INFO.
    if finding["id"] == "cipherlist_AVERAGE" and finding["severity"] not in ("OK", "INFO"):
        failures.append(f'CBC suites flagged {finding["severity"]}: {finding["finding"]}')
for finding in suites:
    text = finding["finding"]
    if any(weak in text for weak in ("RC4", "3DES", "DES-CBC", "NULL", "EXP-", "EXPORT")):
        failures.append(f'weak suite offered: {finding["id"]} {text}')
for finding in rows(["RC4", "SWEET32"]):
    if finding["severity"] not in ("OK", "INFO"):
        failures.append(f'{finding["id"]}: {finding["finding"]}')

with open(summary_path, "w", encoding="utf-8") as out:
    out.write(f"testssl.sh scan of ringfront's TLS listener ({version}).\n")
    out.write("Made by scripts/testssl.sh: ringfront with a self-signed ECDSA P-256 certificate on\n")
    out.write("127.0.0.1, testssl.sh with --nodns none --ip 127.0.0.1 -E and the default checks.\n")
    out.write("Columns: finding id, testssl.sh severity, finding.\n")
    for title, section in (("Protocols", protocols), ("Cipher categories", categories),
                           ("Cipher suites per protocol", suites),
                           ("Negotiated and preferred", order),
                           ("Forward secrecy and groups", groups),
                           ("Session resumption", resumption),
                           ("Vulnerabilities", vulnerabilities)):
        out.write(f"\n{title}\n")
        for finding in section:
            out.write(line(finding) + "\n")
    out.write("\nResult\n")
    if failures:
        for failure in failures:
            out.write(f"FAIL {failure}\n")
    else:
        out.write("PASS no protocol below TLS 1.2 and no weak cipher offered\n")

for failure in failures:
    print(f"testssl: FAIL {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
say "summary written to ${summary#"$repo_root"/}"
