"""Summarise a bench.sh results file as a Markdown table.

The results file has one measurement per line: round, case, server and value, separated by tabs.
For each case the table gives each server's median over the rounds and the median of the
same-round ratios ringfront/nginx (and ringfront/H2O where that ratio has a target), then checks
the target. Ratios are taken within a round because the rounds run minutes apart on a shared
machine, and a ratio of two runs made seconds apart is steadier than either figure alone.

Usage: report.py RESULTS_TSV
"""

import statistics
import sys
from collections import defaultdict

# Case id, label, unit, whether higher is better, nginx ratio target, H2O ratio target.
# A target of None means the case has no ratio target against that server.
THROUGHPUT_CASES = [
    ("plain_1k", "plain 1 KiB, keep-alive", "req/s", 1.5, 1.1),
    ("tls_1k", "TLS 1 KiB, keep-alive", "req/s", 1.5, 1.1),
    ("tls_css_gzip", "TLS 110 KiB CSS, gzip", "req/s", 1.2, None),
    ("tls_1m", "TLS 1 MiB", "req/s", 1.2, None),
    ("plain_16m", "plain 16 MiB", "req/s", 1.2, None),
    ("tls_handshake", "TLS, one request per connection, resumed (wrk)", "conn/s", 1.3, None),
    ("tls_full_handshake", "TLS, one request per connection, full handshake (s_time)", "conn/s", 1.3, None),
    ("redirect", "redirect 301, keep-alive", "req/s", 1.5, None),
    ("proxy_small", "TLS proxied 100 B from Gunicorn", "req/s", 1.0, None),
]

SERVERS = ["ringfront", "nginx", "h2o"]

# Absolute ceilings for ringfront on the cases measured in units where lower is better.
IDLE_KIB_MAX = 4.0
SYSCALLS_PER_REQUEST_MAX = 0.3


def load(path):
    """Return {case: {server: {round: value}}} from the results file."""
    values = defaultdict(lambda: defaultdict(dict))
    with open(path) as results:
        for line in results:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4 or fields[0] == "round":
                continue
            round_id, case, server, value = fields
            values[case][server][round_id] = float(value)
    return values


def median_ratio(numerator, denominator):
    """Return the median of numerator/denominator over the rounds both have, or None."""
    ratios = [numerator[r] / denominator[r] for r in numerator if r in denominator and denominator[r] > 0]
    return statistics.median(ratios) if ratios else None


def median_of(samples):
    return statistics.median(samples.values()) if samples else None


def format_number(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def check_at_least(ratio, target):
    if ratio is None:
        return "not measured"
    if ratio >= target:
        return f"met (≥ {target})"
    return f"missed by {(1 - ratio / target) * 100:.0f}% (≥ {target})"


def check_at_most(value, ceiling, unit):
    if value is None:
        return "not measured"
    if value <= ceiling:
        return f"met (≤ {ceiling} {unit})"
    return f"missed by {(value / ceiling - 1) * 100:.0f}% (≤ {ceiling} {unit})"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: report.py RESULTS_TSV", file=sys.stderr)
        return 2
    values = load(sys.argv[1])
    rounds = sorted({r for case in values.values() for server in case.values() for r in server})

    print(f"Medians over {len(rounds)} rounds; ratios are medians of same-round ratios.")
    print()
    print("| case | unit | ringfront | nginx | H2O | ringfront/nginx | ringfront/H2O | target |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")

    for case, label, unit, nginx_target, h2o_target in THROUGHPUT_CASES:
        per_server = values.get(case, {})
        if not per_server:
            continue
        ringfront = per_server.get("ringfront", {})
        nginx_ratio = median_ratio(ringfront, per_server.get("nginx", {}))
        h2o_ratio = median_ratio(ringfront, per_server.get("h2o", {}))
        verdicts = [f"nginx: {check_at_least(nginx_ratio, nginx_target)}"]
        if h2o_target is not None:
            verdicts.append(f"H2O: {check_at_least(h2o_ratio, h2o_target)}")
        cells = [format_number(median_of(per_server.get(s, {}))) for s in SERVERS]
        print(f"| {label} | {unit} | {' | '.join(cells)} | {format_number(nginx_ratio, 2)} | "
              f"{format_number(h2o_ratio, 2)} | {'; '.join(verdicts)} |")

    latency = values.get("proxy_latency_us", {})
    if latency:
        print_latency(latency)
    idle = values.get("idle_kib_per_conn", {})
    if idle:
        print_lower_better(idle, "memory per idle TLS keep-alive connection", "KiB", 1, IDLE_KIB_MAX, "KiB")
    syscalls = values.get("syscalls_per_req", {})
    if syscalls:
        print_lower_better(syscalls, "system calls per TLS 1 KiB keep-alive request", "calls", 2,
                           SYSCALLS_PER_REQUEST_MAX, "per request")
    syscalls_4conn = values.get("syscalls_per_req_4conn", {})
    if syscalls_4conn:
        print_lower_better(syscalls_4conn, "system calls per TLS 1 KiB keep-alive request, 4 connections",
                           "calls", 2, SYSCALLS_PER_REQUEST_MAX, "per request")

    print_efficiency(values)
    print_cpu_split(values)
    return 0


def print_cpu_split(values):
    """Print each server's CPU time per request, split into user space and the kernel.

    Callgrind counts only user-space instructions, and most of a small request's cost is in the
    kernel, so the split shows where one server's advantage over another comes from.
    """
    rows = [(case, label) for case, label, *_ in THROUGHPUT_CASES if values.get(f"user-us:{case}")]
    if not rows:
        return
    print()
    print("Server CPU time per request in µs, user space + kernel (medians over the rounds):")
    print()
    print("| case | ringfront | nginx | H2O |")
    print("| --- | ---: | ---: | ---: |")
    for case, label in rows:
        user = values.get(f"user-us:{case}", {})
        system = values.get(f"system-us:{case}", {})
        cells = []
        for server in SERVERS:
            user_median = median_of(user.get(server, {}))
            system_median = median_of(system.get(server, {}))
            if user_median is None or system_median is None:
                cells.append("–")
            else:
                cells.append(f"{user_median:.1f} + {system_median:.1f}")
        print(f"| {label} | {' | '.join(cells)} |")


def print_efficiency(values):
    """Print requests per second of server CPU time for each throughput case.

    The load generator shares the machine with the servers, so in some cases it, and not the
    server, sets the pace. Dividing the rate by the CPU time the server's processes used during
    the same run gives a cost per request that stays valid either way.
    """
    print()
    print("Requests per second of server CPU time (rate divided by the cores the server's")
    print("processes used during the run), and the server's CPU use in cores:")
    print()
    print("| case | ringfront | nginx | H2O | ringfront/nginx | ringfront/H2O | CPU cores (ringfront, nginx, H2O) | target on this ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for case, label, _, nginx_target, h2o_target in THROUGHPUT_CASES:
        rates = values.get(case, {})
        cpu = values.get(f"cpu:{case}", {})
        if not rates or not cpu:
            continue
        per_cpu = {}
        for server in SERVERS:
            server_rates = rates.get(server, {})
            server_cpu = cpu.get(server, {})
            per_cpu[server] = {r: server_rates[r] / server_cpu[r] for r in server_rates
                               if server_cpu.get(r, 0) > 0}
        nginx_ratio = median_ratio(per_cpu["ringfront"], per_cpu["nginx"])
        h2o_ratio = median_ratio(per_cpu["ringfront"], per_cpu["h2o"])
        verdicts = [f"nginx: {check_at_least(nginx_ratio, nginx_target)}"]
        if h2o_target is not None:
            verdicts.append(f"H2O: {check_at_least(h2o_ratio, h2o_target)}")
        cells = [format_number(median_of(per_cpu[s])) for s in SERVERS]
        cores = ", ".join(format_number(median_of(cpu.get(s, {})), 2) for s in SERVERS)
        print(f"| {label} | {' | '.join(cells)} | {format_number(nginx_ratio, 2)} | "
              f"{format_number(h2o_ratio, 2)} | {cores} | {'; '.join(verdicts)} |")


def print_latency(latency):
    """Print the row of the latency each proxy adds: its median minus the same round's direct median."""
    direct = latency.get("direct", {})
    added = {}
    for server in SERVERS:
        samples = latency.get(server, {})
        added[server] = {r: samples[r] - direct[r] for r in samples if r in direct}
    # The verdict follows the median of same-round ratios, like every other row: the medians of
    # the two servers' own figures can come from different rounds and disagree with it.
    added_ratio = median_ratio(added["ringfront"], added["nginx"])
    if added_ratio is None:
        verdict = "not measured"
    elif added_ratio <= 1.0:
        verdict = "met (≤ nginx in the median round)"
    else:
        verdict = f"missed by {(added_ratio - 1.0) * 100:.0f}% (≤ nginx in the median round)"
    cells = [format_number(median_of(added[s]), 0) for s in SERVERS]
    print(f"| latency added by the proxy over direct Gunicorn ({format_number(median_of(direct), 0)} µs) | µs | "
          f"{' | '.join(cells)} | {format_number(added_ratio, 2)} | – | {verdict} |")


def print_lower_better(per_server, label, unit, digits, ceiling, ceiling_unit):
    """Print the row of a case where lower is better and ringfront has an absolute ceiling."""
    ringfront = per_server.get("ringfront", {})
    cells = [format_number(median_of(per_server.get(s, {})), digits) for s in SERVERS]
    print(f"| {label} | {unit} | {' | '.join(cells)} | "
          f"{format_number(median_ratio(ringfront, per_server.get('nginx', {})), 2)} | "
          f"{format_number(median_ratio(ringfront, per_server.get('h2o', {})), 2)} | "
          f"{check_at_most(median_of(ringfront), ceiling, ceiling_unit)} |")


if __name__ == "__main__":
    sys.exit(main())
