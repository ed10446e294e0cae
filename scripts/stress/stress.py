"""Load generator for scripts/stress.sh: slow clients, idle connections and a latency probe.

Every connection goes to 127.0.0.1 only. Each phase is bounded in time and closes every socket
it opened before it returns.

Subcommands:
  crowd   Opens clients that trickle request heads, trickle bodies, or never read a large
          response, all at once. While they run, a separate `normal` process measures latency.
          Then waits for the server to close the slow connections and reports whether it did.
  idle    Opens idle plain or TLS connections that each made one request, and reports the
          server's memory per connection.
  normal  Makes sequential requests on new connections and prints their latencies as JSON.

The server's resident memory and descriptor count are read from /proc/PID, so the server must
run on this machine as the same user.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import time

# Bytes of SO_RCVBUF for clients that never read, so the server's writes stall early.
NON_READER_RECEIVE_BUFFER = 4096

# Interval between two samples of the server's memory and descriptors.
SAMPLE_SECONDS = 0.2

# Time allowed for one connect, TLS handshake or response in the idle and normal phases.
IO_TIMEOUT_SECONDS = 10.0

# Concurrent connection attempts, below the server's listen backlog (4096) so that no SYN is
# dropped and retried a second later.
CONNECT_CONCURRENCY = 256


def rss_kib(pid):
    """Return the VmRSS of process `pid` in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS line in /proc/{pid}/status")


def fd_count(pid):
    """Return the number of open file descriptors of process `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit(needed):
    """Raise this process's soft descriptor limit to the hard limit, and fail if that is below
    `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        sys.exit(f"stress: the descriptor limit is {hard}, below the {needed} needed; "
                 "raise it (ulimit -Hn) or lower the connection counts")


def percentile(sorted_values, percent):
    """Return the value at `percent` of `sorted_values` by the nearest-rank method."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * percent // 100))
    return sorted_values[rank - 1]


class Sampler:
    """Samples the server's resident memory and descriptor count until stopped."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_rss_kib = 0
        self.peak_fds = 0
        self._task = None

    async def _run(self):
        while True:
            self.peak_rss_kib = max(self.peak_rss_kib, rss_kib(self.pid))
            self.peak_fds = max(self.peak_fds, fd_count(self.pid))
            await asyncio.sleep(SAMPLE_SECONDS)

    def start(self):
        self._task = asyncio.create_task(self._run())

    async def stop(self):
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


async def open_plain(port, receive_buffer=None):
    """Open a plain TCP connection to 127.0.0.1:`port`, with SO_RCVBUF set first if given."""
    if receive_buffer is None:
        return await asyncio.open_connection("127.0.0.1", port)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=raw)


async def trickle(reader, writer, interval, deadline):
    """Write one byte every `interval` seconds until the server sends something, closes, or
    `deadline` passes. Return the first bytes the server sent (empty if none)."""
    read = asyncio.create_task(reader.read(512))
    while time.monotonic() < deadline:
        done, _ = await asyncio.wait([read], timeout=interval)
        if done:
            break
        try:
            writer.write(b"a")
            await writer.drain()
        except (ConnectionError, OSError):
            break
    if not read.done():
        try:
            await asyncio.wait_for(read, timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return b""
    try:
        return read.result()
    except (ConnectionError, OSError):
        return b""


class Crowd:
    """The slow clients of the crowd phase and the sockets they keep open."""

    def __init__(self, args):
        self.args = args
        self.writers = []
        self.answers = {"head": [], "body": [], "non-reader": []}

    async def head_trickler(self):
        reader, writer = await open_plain(self.args.port)
        self.writers.append(writer)
        writer.write(b"GET /static/small.txt HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        await writer.drain()
        return reader, writer

    async def body_trickler(self):
        reader, writer = await open_plain(self.args.port)
        self.writers.append(writer)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n")
        await writer.drain()
        return reader, writer

    async def non_reader(self):
        reader, writer = await open_plain(self.args.port, NON_READER_RECEIVE_BUFFER)
        self.writers.append(writer)
        writer.write(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return reader, writer

    async def open_all(self):
        """Open every slow client, at most CONNECT_CONCURRENCY at a time. Return the
        (kind, reader, writer) triples."""
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        plan = ([("head", self.head_trickler)] * self.args.heads
                + [("body", self.body_trickler)] * self.args.bodies
                + [("non-reader", self.non_reader)] * self.args.non_readers)

        async def opened(kind, opener):
            async with limit:
                reader, writer = await opener()
                return kind, reader, writer

        return await asyncio.gather(*(opened(kind, opener) for kind, opener in plan))

    def close_all(self):
        for writer in self.writers:
            writer.close()


async def run_crowd(args):
    raise_fd_limit(args.heads + args.bodies + args.non_readers + 256)
    pid = args.pid
    idle_rss = rss_kib(pid)
    idle_fds = fd_count(pid)
    sampler = Sampler(pid)
    sampler.start()
    crowd = Crowd(args)
    started = time.monotonic()
    deadline = started + args.limit

    clients = await crowd.open_all()
    opened_after = time.monotonic() - started
    print(f"crowd: {args.heads} trickled heads (one byte per {args.head_interval} s), "
          f"{args.bodies} trickled bodies (one byte per {args.body_interval} s), "
          f"{args.non_readers} non-readers opened in {opened_after:.1f} s")

    tasks = []
    for kind, reader, writer in clients:
        if kind == "head":
            tasks.append((kind, asyncio.create_task(
                trickle(reader, writer, args.head_interval, deadline))))
        elif kind == "body":
            tasks.append((kind, asyncio.create_task(
                trickle(reader, writer, args.body_interval, deadline))))

    # The latency probe runs in its own process, so this event loop cannot delay it.
    probe = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "normal", "--port", str(args.port),
        "--count", str(args.normal_requests), "--pause", str(args.normal_pause),
        stdout=subprocess.PIPE)
    probe_output, _ = await probe.communicate()
    during_rss = rss_kib(pid)
    during_fds = fd_count(pid)

    for kind, task in tasks:
        crowd.answers[kind].append(await task)

    # Every slow connection must be gone on the server's side while this process still keeps
    # its side open, so only the server's timeouts can have closed them.
    gone_deadline = time.monotonic() + args.gone_within
    after_fds = fd_count(pid)
    while after_fds > idle_fds + args.fd_slack and time.monotonic() < gone_deadline:
        await asyncio.sleep(SAMPLE_SECONDS)
        after_fds = fd_count(pid)
    await sampler.stop()
    after_rss = rss_kib(pid)
    crowd.close_all()

    latencies = json.loads(probe_output)
    failures = latencies["failures"]
    ordered = sorted(latencies["seconds"])
    p50 = percentile(ordered, 50) * 1000
    p99 = percentile(ordered, 99) * 1000
    heads_408 = sum(answer.startswith(b"HTTP/1.1 408 ") for answer in crowd.answers["head"])
    bodies_408 = sum(answer.startswith(b"HTTP/1.1 408 ") for answer in crowd.answers["body"])

    print(f"normal client: {len(ordered)} requests, {failures} failed, "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ordered[-1] * 1000 if ordered else 0:.2f} ms")
    print(f"408 responses: {heads_408} of {args.heads} heads, {bodies_408} of {args.bodies} bodies")
    print(f"ringfront RSS: before {idle_rss} KiB, during {during_rss} KiB "
          f"(peak {sampler.peak_rss_kib} KiB), after {after_rss} KiB")
    print(f"ringfront open fds: before {idle_fds}, during {during_fds} "
          f"(peak {sampler.peak_fds}), after {after_fds}")

    ok = True
    if failures:
        print(f"FAIL: {failures} normal requests failed")
        ok = False
    if not p99 < args.p99_limit_ms:
        print(f"FAIL: p99 {p99:.2f} ms is not below {args.p99_limit_ms} ms")
        ok = False
    if after_fds > idle_fds + args.fd_slack:
        print(f"FAIL: {after_fds - idle_fds} slow connections still open "
              f"{args.gone_within} s after the crowd ended")
        ok = False
    return 0 if ok else 1


async def open_idle(port, tls_context, results):
    """Open one connection, make one request on it and keep it. Append (reader, writer) to
    `results`, or an exception on failure."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls_context,
                                    server_hostname="localhost" if tls_context else None),
            IO_TIMEOUT_SECONDS)
        writer.write(b"GET /static/small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_SECONDS)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await asyncio.wait_for(reader.readexactly(length), IO_TIMEOUT_SECONDS)
        results.append((reader, writer))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as error:
        results.append(error)


async def run_idle(args):
    raise_fd_limit(args.count + 256)
    tls_context = None
    if args.tls:
        # The certificate is a throwaway self-signed one on loopback, so the client skips
        # verification, which would only slow the load generator down.
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls_context.check_hostname = False
        tls_context.verify_mode = ssl.CERT_NONE
    pid = args.pid
    before_rss = rss_kib(pid)
    before_fds = fd_count(pid)

    started = time.monotonic()
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    results = []

    async def bounded():
        async with limit:
            await open_idle(args.port, tls_context, results)

    try:
        await asyncio.wait_for(asyncio.gather(*(bounded() for _ in range(args.count))), args.limit)
    except asyncio.TimeoutError:
        pass
    opened = [result for result in results if not isinstance(result, BaseException)]
    errors = [result for result in results if isinstance(result, BaseException)]
    elapsed = time.monotonic() - started

    # Let the server settle after the last request before measuring.
    await asyncio.sleep(1.0)
    with_rss = rss_kib(pid)
    with_fds = fd_count(pid)
    for _, writer in opened:
        writer.close()

    kind = "TLS" if args.tls else "plain"
    per_connection = (with_rss - before_rss) / len(opened) if opened else float("nan")
    print(f"idle {kind}: {len(opened)} of {args.count} connections open "
          f"after {elapsed:.1f} s, {len(errors)} failed")
    if errors:
        print(f"idle {kind}: first failure: {errors[0]!r}")
    print(f"idle {kind}: ringfront RSS {before_rss} KiB before, {with_rss} KiB with them open, "
          f"{per_connection:.1f} KiB per connection; open fds {before_fds} -> {with_fds}")
    return 0 if len(opened) == args.count else 1


def run_normal(args):
    """Make `count` sequential GET requests, each on a new connection, and print the latencies."""
    request = b"GET /static/small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    seconds = []
    failures = 0
    for _ in range(args.count):
        sent = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", args.port), timeout=IO_TIMEOUT_SECONDS) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(request)
                response = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    response += chunk
            if not response.startswith(b"HTTP/1.1 200 "):
                failures += 1
            else:
                seconds.append(time.perf_counter() - sent)
        except OSError:
            failures += 1
        time.sleep(args.pause)
    json.dump({"seconds": seconds, "failures": failures}, sys.stdout)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    crowd = commands.add_parser("crowd", help="slow clients and a latency probe")
    crowd.add_argument("--port", type=int, required=True, help="ringfront's plain HTTP port")
    crowd.add_argument("--pid", type=int, required=True, help="ringfront's process id")
    crowd.add_argument("--heads", type=int, default=1000, help="clients trickling a head")
    crowd.add_argument("--head-interval", type=float, default=0.5,
                       help="seconds between two bytes of a trickled head")
    crowd.add_argument("--bodies", type=int, default=200, help="clients trickling a body")
    crowd.add_argument("--body-interval", type=float, default=1.0,
                       help="seconds between two bytes of a trickled body")
    crowd.add_argument("--non-readers", type=int, default=200,
                       help="clients that never read a large response")
    crowd.add_argument("--normal-requests", type=int, default=500,
                       help="sequential requests of the latency probe")
    crowd.add_argument("--normal-pause", type=float, default=0.01,
                       help="seconds between two requests of the latency probe")
    crowd.add_argument("--p99-limit-ms", type=float, default=50.0,
                       help="fail when the probe's p99 latency is not below this, in ms")
    crowd.add_argument("--limit", type=float, default=60.0,
                       help="seconds after which the slow clients give up")
    crowd.add_argument("--gone-within", type=float, default=30.0,
                       help="seconds the server gets to close the slow connections after "
                            "the crowd ended")
    crowd.add_argument("--fd-slack", type=int, default=8,
                       help="descriptors above the starting count still allowed at the end")

    idle = commands.add_parser("idle", help="idle connections and memory per connection")
    idle.add_argument("--port", type=int, required=True, help="ringfront's port")
    idle.add_argument("--pid", type=int, required=True, help="ringfront's process id")
    idle.add_argument("--count", type=int, required=True, help="connections to open")
    idle.add_argument("--tls", action="store_true", help="connect with TLS")
    idle.add_argument("--limit", type=float, default=90.0,
                      help="seconds allowed for opening every connection")

    normal = commands.add_parser("normal", help="sequential requests, latencies as JSON")
    normal.add_argument("--port", type=int, required=True, help="ringfront's plain HTTP port")
    normal.add_argument("--count", type=int, default=500, help="requests to make")
    normal.add_argument("--pause", type=float, default=0.01,
                        help="seconds between two requests")

    args = parser.parse_args()
    if args.command == "crowd":
        return asyncio.run(run_crowd(args))
    if args.command == "idle":
        return asyncio.run(run_idle(args))
    return run_normal(args)


if __name__ == "__main__":
    sys.exit(main())
