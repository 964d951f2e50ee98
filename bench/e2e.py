#!/usr/bin/env python3
"""End-to-end benchmark of bifrost-http: the same load, straight to a mock upstream and through
the gateway (and through a bare nginx proxy hop when nginx is installed), side by side.

    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBIFROST_BUILD_EXAMPLES=ON
    cmake --build build --target bifrost-http bifrost-loadgen bifrost-mock-upstream
    bench/e2e.py                       # writes bench/results/e2e-<time>.json
    bench/e2e.py --out run.json --quick

Scenarios (bifrost-loadgen against bifrost-mock-upstream, all on this machine):

  (a) one connection, closed loop, zero upstream latency: the gateway's added latency
      (its p50 and p99 minus the direct ones);
  (b) 64 connections, closed loop, zero upstream latency: the most requests per second;
  (c) an open loop at 5,000 requests/s against a 1-second upstream (about 5,000 in flight) for
      10 s: the sustained rate, errors, the gateway's peak RSS (VmHWM) and thread count;
  (d) one connection, streamed answers ("stream": true; the mock sends its first event at once
      and the rest 2 ms later): the gateway's added time to the first chunk (the first body
      bytes), p50 and p99 minus the direct ones;
  (e) an open loop at a fixed rate (15,000 requests/s) over 64 connections, zero upstream
      latency, in rounds: each proxy's CPU time per answer. On a machine whose speed drifts this
      is a steadier comparison than (b)'s rate: the rate is the same for every row, so a
      proxy's cost shows apart from what the load generator and the mock manage to do.

The gateway's own overhead histogram (bifrost_gateway_overhead_seconds) and queue-wait summary
are scraped from its GET /metrics. Each run also records the CPU time each process spent per
request. The table compares the figures with the targets of the performance issue.

Only the standard library is used. Processes started here are stopped on exit.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# Targets of the performance issue (2-core machine, everything on it).
TARGET_RSS_MIB = 256
TARGET_THREADS = 16
TARGET_SUSTAINED = 0.97
TARGET_OVERHEAD_P50_US = 5
TARGET_OVERHEAD_P99_US = 25


# ---- processes ----------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} did not listen on port {port}")


class Procs:
    """Processes started by this script; all stopped by stop_all()."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, args):
        out = open(os.path.join(self.workdir, name + ".log"), "wb")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        p.log_name = name
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=40.0):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p, timeout=10.0)


def proc_status(pid):
    """VmRSS, VmHWM (KiB) and Threads of a process, from /proc/PID/status."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_split(pid):
    """(user, system) CPU seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """Samples a process's RSS and thread count while a run goes on."""

    def __init__(self, pid, period=0.2):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.max_rss_kib = 0
        self.max_threads = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            s = proc_status(self.pid)
            self.max_rss_kib = max(self.max_rss_kib, s.get("VmRSS", 0))
            self.max_threads = max(self.max_threads, s.get("Threads", 0))
            self.done.wait(self.period)

    def stop(self):
        self.done.set()
        self.join()


def http_get(port, path, timeout=10.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


# ---- /metrics -----------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """[(name, {labels}, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            pass
    return out


def histogram(samples, name, **match):
    """{"buckets": [(le, cumulative)], "sum", "count"} of one histogram series."""
    def ok(labels):
        return all(labels.get(k) == v for k, v in match.items())

    buckets = sorted(
        (float("inf") if l["le"] == "+Inf" else float(l["le"]), v)
        for n, l, v in samples if n == name + "_bucket" and ok(l))
    total = next((v for n, l, v in samples if n == name + "_sum" and ok(l)), 0.0)
    count = next((v for n, l, v in samples if n == name + "_count" and ok(l)), 0.0)
    return {"buckets": buckets, "sum": total, "count": count}


def histogram_delta(after, before):
    if before is None:
        return after
    prev = dict(before["buckets"])
    return {"buckets": [(le, v - prev.get(le, 0.0)) for le, v in after["buckets"]],
            "sum": after["sum"] - before["sum"], "count": after["count"] - before["count"]}


def histogram_quantile(h, q):
    """Prometheus' histogram_quantile: linear within the bucket (None when empty). Bucket edges
    bound the resolution: below the first edge it is an interpolation from 0."""
    count = h["count"]
    if count <= 0 or not h["buckets"]:
        return None
    rank = q * count
    lower, prev = 0.0, 0.0
    for le, cum in h["buckets"]:
        if cum >= rank:
            if le == float("inf"):
                return lower
            width = cum - prev
            return lower + (le - lower) * ((rank - prev) / width if width > 0 else 0)
        lower, prev = le, cum
    return lower


def summary_quantiles(samples, name, **match):
    return {l["quantile"]: v for n, l, v in samples
            if n == name and "quantile" in l and all(l.get(k) == v2 for k, v2 in match.items())}


def gateway_figures(samples, before_samples, provider):
    """The gateway's own view of the chat requests between two scrapes."""
    out = {}
    for key, name in (("overhead", "bifrost_gateway_overhead_seconds"),
                      ("upstream", "bifrost_upstream_latency_seconds")):
        h = histogram(samples, name, provider=provider)
        hb = histogram(before_samples, name, provider=provider) if before_samples else None
        d = histogram_delta(h, hb)
        out[key] = {
            "count": d["count"],
            "mean_us": d["sum"] / d["count"] * 1e6 if d["count"] > 0 else None,
            "p50_us_bucketed": _us(histogram_quantile(d, 0.50)),
            "p99_us_bucketed": _us(histogram_quantile(d, 0.99)),
            "buckets": [[("+Inf" if le == float("inf") else le), v] for le, v in d["buckets"]],
        }
    qw = summary_quantiles(samples, "bifrost_provider_queue_wait_seconds", provider=provider)
    out["queue_wait_us"] = {k: v * 1e6 for k, v in qw.items()}
    outcomes = {l.get("outcome"): v for n, l, v in samples
                if n == "bifrost_provider_requests_total" and l.get("provider") == provider}
    out["provider_outcomes"] = outcomes
    return out


def _us(seconds):
    return None if seconds is None else seconds * 1e6


# ---- runs ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.procs = Procs(workdir)
        b = args.build_dir
        self.loadgen = os.path.join(b, "bench", "bifrost-loadgen")
        self.mock = os.path.join(b, "bench", "bifrost-mock-upstream")
        self.gateway = args.gateway_bin or os.path.join(b, "examples", "bifrost-http")
        for exe in (self.loadgen, self.mock, self.gateway):
            if not os.access(exe, os.X_OK):
                sys.exit(f"e2e: {exe} not found; build it first:\n"
                         f"  cmake -S . -B {b} -DCMAKE_BUILD_TYPE=RelWithDebInfo "
                         f"-DBIFROST_BUILD_EXAMPLES=ON\n"
                         f"  cmake --build {b} --target bifrost-http bifrost-loadgen "
                         f"bifrost-mock-upstream")
        self.nginx = None if args.no_nginx else (
            shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)),
                                          None))

    def start_mock(self, name, latency_ms):
        port = free_port()
        p = self.procs.start(name, [self.mock, "--port", str(port), "--latency-ms",
                                    str(latency_ms), "--threads", str(self.args.mock_threads)])
        wait_port(port, p)
        return p, port

    def start_gateway(self, name, upstream_port, concurrency, buffer_size, binary=None,
                      extra=()):
        cfg = {
            "client": {"initial_pool_size": self.args.pool_size, "drop_excess_requests": False},
            "providers": {
                "openai": {
                    "keys": [{"value": "sk-bench-not-a-real-key", "models": [], "weight": 1.0}],
                    "network_config": {
                        "base_url": f"http://127.0.0.1:{upstream_port}",
                        "default_request_timeout_in_seconds": 30,
                    },
                    "concurrency_and_buffer_size": {
                        "concurrency": concurrency,
                        "buffer_size": buffer_size,
                        "worker_threads": self.args.worker_threads,
                    },
                    "circuit_breaker": {"failure_threshold": 0},
                }
            },
        }
        path = os.path.join(self.workdir, name + ".config.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        port = free_port()
        p = self.procs.start(name, [binary or self.gateway, "-config", path, "-port", str(port),
                                    "-log-level", self.args.gateway_log_level,
                                    "-io-threads", str(self.args.io_threads), *extra])
        wait_port(port, p)
        http_get(port, "/health")
        return p, port, cfg

    def start_nginx(self, name, upstream_port):
        if not self.nginx:
            return None, None
        port = free_port()
        d = os.path.join(self.workdir, name)
        os.makedirs(d, exist_ok=True)
        conf = f"""
worker_processes {self.args.nginx_workers};
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 40000;
events {{ worker_connections 20000; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream mock {{ server 127.0.0.1:{upstream_port}; keepalive 1024; keepalive_requests 10000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 60s;
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        p = self.procs.start(name, [self.nginx, "-e", f"{d}/error.log", "-p", d, "-c", path])
        try:
            wait_port(port, p)
        except RuntimeError as e:
            print(f"e2e: nginx did not start ({e}); its rows are skipped", file=sys.stderr)
            self.procs.stop(p)
            return None, None
        return p, port

    def run_loadgen(self, label, port, model, extra, watch=()):
        """One bifrost-loadgen run; `watch` are (name, Popen) whose CPU time per request is taken
        (for nginx the workers are its children: their CPU is read from the whole group)."""
        out = os.path.join(self.workdir, f"{label}.json")
        args = [self.loadgen, "--url", f"http://127.0.0.1:{port}/v1/chat/completions", "--model",
                model, "--json", out, "--label", label, "--quiet",
                "--threads", str(self.args.loadgen_threads)] + extra
        before = {n: group_cpu(p) for n, p in watch}
        samplers = {n: Sampler(p.pid) for n, p in watch}
        for s in samplers.values():
            s.start()
        t0 = time.time()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.time() - t0
        for s in samplers.values():
            s.stop()
        if res.returncode != 0:
            raise RuntimeError(f"bifrost-loadgen failed ({res.returncode}): {res.stderr.strip()}")
        with open(out) as f:
            r = json.load(f)
        r["wall_s"] = wall
        answered = max(r.get("answered_total", 0), 1)
        loadgen_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        r["cpu_us_per_request"] = {"loadgen": loadgen_cpu / answered * 1e6}
        for n, p in watch:
            b, a = before[n], group_cpu(p)
            if a is not None and b is not None:
                user, system = (a[0] - b[0]) / answered * 1e6, (a[1] - b[1]) / answered * 1e6
                r["cpu_us_per_request"][n] = user + system
                r.setdefault("cpu_user_system_us_per_request", {})[n] = [user, system]
            r.setdefault("process", {})[n] = {
                "max_rss_mib": samplers[n].max_rss_kib / 1024,
                "max_threads": samplers[n].max_threads,
            }
        return r


def proxy_cpu(r):
    """The CPU time per answer of a row's proxy process (the gateway or nginx; None: direct)."""
    cpu = r.get("cpu_us_per_request", {})
    return cpu.get("gateway", cpu.get("nginx"))


def cpu_text(r):
    """A row's CPU per request: each process's total, and the proxy's user + system split."""
    split = r.get("cpu_user_system_us_per_request", {})
    parts = []
    for k, v in r.get("cpu_us_per_request", {}).items():
        parts.append(f"{k} {v:.1f}" + (f" ({split[k][0]:.1f}u+{split[k][1]:.1f}s)"
                                       if k in split else ""))
    return " ".join(parts)


def group_cpu(p):
    """(user, system) CPU seconds of a process and its direct children (nginx's workers)."""
    total = cpu_split(p.pid)
    if total is None:
        return None
    try:
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            for child in f.read().split():
                c = cpu_split(int(child))
                if c is not None:
                    total = (total[0] + c[0], total[1] + c[1])
    except OSError:
        pass
    return total


def mock_requests(port):
    try:
        return json.loads(http_get(port, "/stats"))["chat_completions"]
    except (OSError, ValueError, KeyError):
        return None


# ---- the scenarios ------------------------------------------------------------------------------


def closed_scenarios(bench, results):
    a = bench.args
    mock, mock_port = bench.start_mock("mock-0ms", 0)
    gw, gw_port, cfg = bench.start_gateway("gateway-ab", mock_port, a.concurrency_ab,
                                           a.buffer_ab)
    ngx, ngx_port = bench.start_nginx("nginx-ab", mock_port)
    results["config_ab"] = cfg
    targets = [("direct", mock_port, a.model_direct, [("mock", mock)])]
    if ngx:
        targets.append(("nginx", ngx_port, a.model_direct, [("nginx", ngx), ("mock", mock)]))
    targets.append(("bifrost", gw_port, a.model_gateway, [("gateway", gw), ("mock", mock)]))
    # The same gateway with its connections on I/O threads of their own, and an older build:
    # rows of the same run, side by side.
    others = []
    if a.io_mode_threads_row:
        others.append(("bifrost-threads", None, ["-io-mode", "threads"]))
    if a.baseline_bin:
        others.append(("baseline", a.baseline_bin, []))
    for row in a.extra_row:
        name, _, flags = row.partition("=")
        others.append((name, None, shlex.split(flags)))
    for row in a.extra_bin:
        name, _, path = row.partition("=")
        others.append((name, path, []))
    extra_gateways = []
    for name, binary, extra in others:
        g, g_port, _ = bench.start_gateway("gateway-ab-" + name, mock_port, a.concurrency_ab,
                                           a.buffer_ab, binary, extra)
        extra_gateways.append(g)
        targets.append((name, g_port, a.model_gateway, [("gateway", g), ("mock", mock)]))

    for key, conns, dur in (("a", 1, a.duration_a), ("b", 64, a.duration_b),
                            ("d", 1, a.duration_a), ("e", 64, a.duration_e)):
        if key not in a.only:
            continue
        metrics_before = parse_prometheus(http_get(gw_port, "/metrics"))
        rounds = {"b": a.rounds_b, "e": a.rounds_e}.get(key, 1)
        if key == "e":
            # Open loop at a rate every row sustains: each process's CPU time per answer, from
            # the first request to the last (so no warm-up is left out of the count).
            load = ["--rate", str(a.rate_e), "--connections", str(conns), "--max-in-flight",
                    str(4 * conns), "--duration", str(dur), "--warmup", "0"]
        else:
            load = ["--connections", str(conns), "--duration", str(dur), "--warmup",
                    str(a.warmup)] + (["--stream"] if key == "d" else [])
        per_round = []
        for rnd in range(rounds):
            # The reference row first, then the proxies in an order that turns each round, so
            # that none of them always runs in the same phase of a drifting machine.
            proxies = targets[1:]
            shift = rnd % len(proxies) if proxies else 0
            order = targets[:1] + proxies[shift:] + proxies[:shift]
            got = {}
            for name, port, model, watch in order:
                if key == "d" and name == "nginx":
                    continue  # buffers proxied answers by default: not a streaming reference
                seen = mock_requests(mock_port)
                r = bench.run_loadgen(f"{key}-{name}-{rnd}", port, model, load, watch)
                after = mock_requests(mock_port)
                if seen is not None and after is not None:
                    r["upstream_requests"] = after - seen
                got[name] = r
                tag = f" round {rnd + 1}/{rounds}" if rounds > 1 else ""
                if key == "e":
                    print(f"  ({key}) {name:8} {a.rate_e:.0f} req/s due: "
                          f"{r['throughput_rps']:9.0f} req/s, {cpu_text(r)}, p99 "
                          f"{r['latency_us']['p99']:.1f} us, errors {r['errors']:.0f}{tag}",
                          flush=True)
                    continue
                print(f"  ({key}) {name:8} {conns:3} conn: {r['throughput_rps']:9.0f} req/s, "
                      f"p50 {r['latency_us']['p50']:8.1f} us, p99 {r['latency_us']['p99']:8.1f} "
                      f"us, errors {r['errors']:.0f}{tag}", flush=True)
            per_round.append(got)
        # Each row: its round of median rate (for (e): of median proxy CPU per answer), the
        # lower middle one for an even count, in the targets' order.
        rows = {}
        for name, _, _, _ in targets:
            runs = sorted((g[name] for g in per_round if name in g),
                          key=(lambda r: proxy_cpu(r) or 0) if key == "e"
                          else (lambda r: r["throughput_rps"]))
            if runs:
                rows[name] = dict(runs[(len(runs) - 1) // 2])
                if rounds > 1:
                    rows[name]["round_rates"] = [g[name]["throughput_rps"] for g in per_round]
                    rows[name]["round_cpu_us"] = [proxy_cpu(g[name]) for g in per_round]
        metrics_after = parse_prometheus(http_get(gw_port, "/metrics"))
        results[key] = {"connections": conns, "duration_s": dur, "rows": rows, "rounds": rounds,
                        **({"rate": a.rate_e} if key == "e" else {}),
                        "gateway_metrics": gateway_figures(metrics_after, metrics_before,
                                                           "openai")}
    results["gateway_ab_process"] = proc_status(gw.pid)
    bench.procs.stop(gw)
    for g in extra_gateways:
        bench.procs.stop(g)
    if ngx:
        bench.procs.stop(ngx, sig=signal.SIGQUIT)
    bench.procs.stop(mock)


def open_scenario(bench, results):
    a = bench.args
    mock, mock_port = bench.start_mock("mock-slow", a.latency_c_ms)
    rows = {}
    extra = ["--rate", str(a.rate_c), "--max-in-flight", str(a.max_in_flight_c), "--duration",
             str(a.duration_c), "--warmup", str(a.warmup_c), "--timeout", "30"]

    seen = mock_requests(mock_port)
    rows["direct"] = bench.run_loadgen("c-direct", mock_port, a.model_direct, extra,
                                       [("mock", mock)])
    after = mock_requests(mock_port)
    if seen is not None and after is not None:
        rows["direct"]["upstream_requests"] = after - seen
    print(f"  (c) direct   {rows['direct']['throughput_rps']:9.0f} req/s sustained, "
          f"errors {rows['direct']['errors']:.0f}", flush=True)

    if a.nginx_c:
        ngx, ngx_port = bench.start_nginx("nginx-c", mock_port)
        if ngx:
            rows["nginx"] = bench.run_loadgen("c-nginx", ngx_port, a.model_direct, extra,
                                              [("nginx", ngx), ("mock", mock)])
            bench.procs.stop(ngx, sig=signal.SIGQUIT)
            print(f"  (c) nginx    {rows['nginx']['throughput_rps']:9.0f} req/s sustained, "
                  f"errors {rows['nginx']['errors']:.0f}", flush=True)

    gw, gw_port, cfg = bench.start_gateway("gateway-c", mock_port, a.concurrency_c, a.buffer_c)
    results["config_c"] = cfg
    before = parse_prometheus(http_get(gw_port, "/metrics"))
    seen = mock_requests(mock_port)
    r = bench.run_loadgen("c-bifrost", gw_port, a.model_gateway, extra,
                          [("gateway", gw), ("mock", mock)])
    after = mock_requests(mock_port)
    if seen is not None and after is not None:
        r["upstream_requests"] = after - seen
    status = proc_status(gw.pid)
    r["gateway_vmhwm_mib"] = status.get("VmHWM", 0) / 1024
    r["gateway_threads_at_end"] = status.get("Threads", 0)
    rows["bifrost"] = r
    print(f"  (c) bifrost  {r['throughput_rps']:9.0f} req/s sustained, errors {r['errors']:.0f}, "
          f"VmHWM {r['gateway_vmhwm_mib']:.1f} MiB, threads "
          f"{r['process']['gateway']['max_threads']}", flush=True)
    results["c"] = {"rate": a.rate_c, "upstream_latency_ms": a.latency_c_ms,
                    "duration_s": a.duration_c, "rows": rows,
                    "gateway_metrics": gateway_figures(
                        parse_prometheus(http_get(gw_port, "/metrics")), before, "openai")}
    bench.procs.stop(gw)
    bench.procs.stop(mock)


# ---- report -------------------------------------------------------------------------------------


def fmt(v, spec="{:.1f}", none="-"):
    return none if v is None else spec.format(v)


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) if i else str(h).ljust(w)
                     for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))


def reached_upstream(row):
    """Whether the requests of a gateway run reached the mock upstream (None: unknown)."""
    n = row.get("upstream_requests")
    if n is None:
        return None
    return n >= 0.9 * max(row.get("answered_total", 0), 1)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[(n - 1) // 2] + xs[n // 2]) / 2


def round_ratios(rows, key="round_rates"):
    """bifrost's figure over each other proxy row's, round by round: the rate (`round_rates`,
    (b) in rounds) or the CPU per answer (`round_cpu_us`, scenario (e))."""
    mine = rows.get("bifrost", {}).get(key)
    if not mine:
        return {}
    out = {}
    for name, r in rows.items():
        theirs = r.get(key)
        if name in ("bifrost", "direct") or not theirs:
            continue
        out[name] = [x / y for x, y in zip(mine, theirs) if x is not None and y]
    return out


def report(results):
    checks = []
    print()
    if "a" in results:
        rows = results["a"]["rows"]
        d = rows["direct"]["latency_us"]
        print(f"(a) 1 connection, closed loop, zero upstream latency, "
              f"{results['a']['duration_s']} s")
        out = []
        for name, r in rows.items():
            l = r["latency_us"]
            added50 = l["p50"] - d["p50"] if name != "direct" else None
            added99 = l["p99"] - d["p99"] if name != "direct" else None
            r["added_p50_us"], r["added_p99_us"] = added50, added99
            out.append([name, fmt(r["throughput_rps"], "{:.0f}"), fmt(l["p50"]), fmt(l["p90"]),
                        fmt(l["p99"]), fmt(l["p999"]), fmt(l["max"]), fmt(added50), fmt(added99),
                        f"{r['errors']:.0f}",
                        cpu_text(r)])
        table(["target", "req/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us",
               "+p50 us", "+p99 us", "errors", "cpu us/req"], out)
        g = rows["bifrost"]
        if "nginx" in rows:
            n = rows["nginx"]
            checks.append(("(a) added p50 <= nginx's", g["added_p50_us"] <= n["added_p50_us"],
                           f"{g['added_p50_us']:.1f} vs {n['added_p50_us']:.1f} us"))
            if n["added_p99_us"] > 0:
                checks.append(("(a) added p99 <= 2x nginx's",
                               g["added_p99_us"] <= 2 * n["added_p99_us"],
                               f"{g['added_p99_us']:.1f} vs 2 x {n['added_p99_us']:.1f} us"))
            else:
                print("(a) nginx's p99 is below the direct one: the p99 comparison is noise in "
                      "this run")
        print()
    if "b" in results:
        rows = results["b"]["rows"]
        d = rows["direct"]["throughput_rps"]
        n_rounds = results["b"].get("rounds", 1)
        print(f"(b) 64 connections, closed loop, zero upstream latency, "
              f"{results['b']['duration_s']} s"
              + (f" per round, {n_rounds} rounds (each row: its median round)"
                 if n_rounds > 1 else ""))
        out = []
        for name, r in rows.items():
            l = r["latency_us"]
            out.append([name, fmt(r["throughput_rps"], "{:.0f}"),
                        fmt(r["throughput_rps"] / d if d else None, "{:.2f}"),
                        fmt(r["throughput_rps"] / rows["nginx"]["throughput_rps"], "{:.2f}")
                        if "nginx" in rows and rows["nginx"]["throughput_rps"] else "-",
                        fmt(l["p50"]), fmt(l["p99"]), fmt(l["max"]), f"{r['errors']:.0f}",
                        cpu_text(r)])
        table(["target", "req/s", "x direct", "x nginx", "p50 us", "p99 us", "max us", "errors",
               "cpu us/req"], out)
        g = rows["bifrost"]["throughput_rps"]
        ratios = round_ratios(rows)
        for name, rs in ratios.items():
            print(f"(b) bifrost / {name}, per round: median {median(rs):.3f} "
                  f"({min(rs):.3f} to {max(rs):.3f}) over {len(rs)} rounds: "
                  + ", ".join(f"{x:.2f}" for x in rs))
        results["b"]["round_ratios"] = ratios
        if "nginx" in rows and "nginx" in ratios:
            m = median(ratios["nginx"])
            checks.append(("(b) throughput >= nginx's (median of the per-round ratios)", m >= 1,
                           f"{m:.3f}x over {len(ratios['nginx'])} rounds"))
        elif "nginx" in rows:
            checks.append(("(b) throughput >= nginx's", g >= rows["nginx"]["throughput_rps"],
                           f"{g:.0f} vs {rows['nginx']['throughput_rps']:.0f} req/s"))
        checks.append(("(b) throughput >= 30x Portkey (~500 req/s here)", g >= 15000,
                       f"{g:.0f} req/s"))
        print()
    if "c" in results:
        c = results["c"]
        rows = c["rows"]
        d = rows["direct"]["throughput_rps"]
        print(f"(c) open loop {c['rate']} req/s, upstream latency {c['upstream_latency_ms']} ms, "
              f"{c['duration_s']} s")
        out = []
        for name, r in rows.items():
            l = r["latency_us"]
            proc = r.get("process", {}).get("gateway" if name == "bifrost" else name, {})
            out.append([name, fmt(r["throughput_rps"], "{:.0f}"),
                        fmt(r["throughput_rps"] / d * 100 if d else None, "{:.1f}%"),
                        f"{r['errors']:.0f}", fmt(l["p50"] / 1e3), fmt(l["p99"] / 1e3),
                        fmt(l["max"] / 1e3),
                        fmt(r.get("gateway_vmhwm_mib") or proc.get("max_rss_mib")),
                        proc.get("max_threads", "-"),
                        f"{r.get('max_open_connections', 0):.0f}",
                        fmt(r.get("max_send_lag_us", 0) / 1e3, "{:.0f}")])
        table(["target", "req/s", "% direct", "errors", "p50 ms", "p99 ms", "max ms",
               "peak RSS MiB", "threads", "client conns", "send lag ms"], out)
        print("(send lag: how late the load generator sent a due request at worst; large values "
              "mean the machine starved it)")
        g = rows["bifrost"]
        checks.append(("(c) sustained >= 97% of direct",
                       d > 0 and g["throughput_rps"] >= TARGET_SUSTAINED * d,
                       f"{g['throughput_rps'] / d * 100 if d else 0:.1f}%"))
        checks.append(("(c) 0 errors", g["errors"] == 0, f"{g['errors']:.0f}"))
        checks.append((f"(c) RSS <= {TARGET_RSS_MIB} MiB",
                       g["gateway_vmhwm_mib"] <= TARGET_RSS_MIB,
                       f"VmHWM {g['gateway_vmhwm_mib']:.1f} MiB"))
        threads = g["process"]["gateway"]["max_threads"]
        checks.append((f"(c) <= {TARGET_THREADS} threads", threads <= TARGET_THREADS,
                       str(threads)))
        print()

    if "d" in results:
        rows = results["d"]["rows"]
        d = rows["direct"]["first_chunk_us"]
        print(f"(d) 1 connection, streamed answers, zero upstream latency to the first event, "
              f"{results['d']['duration_s']} s")
        out = []
        for name, r in rows.items():
            f, l = r["first_chunk_us"], r["latency_us"]
            added50 = f["p50"] - d["p50"] if name != "direct" else None
            added99 = f["p99"] - d["p99"] if name != "direct" else None
            r["added_first_chunk_p50_us"], r["added_first_chunk_p99_us"] = added50, added99
            out.append([name, fmt(r["throughput_rps"], "{:.0f}"), fmt(f["p50"]), fmt(f["p99"]),
                        fmt(added50), fmt(added99), fmt(l["p50"]), fmt(l["p99"]),
                        f"{r['errors']:.0f}"])
        table(["target", "req/s", "1st chunk p50 us", "1st chunk p99 us", "+p50 us", "+p99 us",
               "whole p50 us", "whole p99 us", "errors"], out)
        print()

    if "e" in results:
        e = results["e"]
        rows = e["rows"]
        print(f"(e) open loop {e['rate']:.0f} req/s over {e['connections']} connections, zero "
              f"upstream latency, {e['duration_s']} s per round, {e['rounds']} round(s) (each "
              f"row: its round of median proxy CPU per answer)")
        out = []
        for name, r in rows.items():
            cpu = r.get("cpu_us_per_request", {})
            split = r.get("cpu_user_system_us_per_request", {})
            proc = "gateway" if "gateway" in cpu else ("nginx" if "nginx" in cpu else None)
            rc = [x for x in r.get("round_cpu_us", []) if x is not None]
            out.append([name, fmt(r["throughput_rps"], "{:.0f}"), fmt(proxy_cpu(r)),
                        (f"{split[proc][0]:.1f} + {split[proc][1]:.1f}" if proc in split else "-"),
                        (f"{min(rc):.1f} to {max(rc):.1f}" if rc else "-"),
                        fmt(cpu.get("mock")), fmt(cpu.get("loadgen")),
                        fmt(r["latency_us"]["p50"]), fmt(r["latency_us"]["p99"]),
                        f"{r['errors']:.0f}"])
        table(["target", "req/s", "proxy cpu us/req", "user + system", "rounds' range",
               "mock cpu", "loadgen cpu", "p50 us", "p99 us", "errors"], out)
        slow = [n for n, r in rows.items() if r["throughput_rps"] < 0.97 * e["rate"]]
        if slow:
            print(f"(e) WARNING: {', '.join(slow)} did not sustain the rate: lower the rate "
                  f"(--rate-e) for figures that compare")
        ratios = round_ratios(rows, "round_cpu_us")
        for name, rs in ratios.items():
            print(f"(e) bifrost / {name} CPU per answer, per round: median {median(rs):.3f} "
                  f"({min(rs):.3f} to {max(rs):.3f}) over {len(rs)} rounds: "
                  + ", ".join(f"{x:.2f}" for x in rs))
        e["round_cpu_ratios"] = ratios
        print()

    for key in ("a", "b", "c", "d", "e"):
        if key not in results:
            continue
        m = results[key]["gateway_metrics"]
        o, u = m["overhead"], m["upstream"]
        qw = m.get("queue_wait_us", {})
        print(f"({key}) gateway /metrics: {o['count']:.0f} answered; overhead mean "
              f"{fmt(o['mean_us'])} us, p50 ~{fmt(o['p50_us_bucketed'])} us, p99 "
              f"~{fmt(o['p99_us_bucketed'])} us (from buckets 1 us apart up to 10 us); upstream "
              f"mean {fmt(u['mean_us'])} us; queue wait p50 {fmt(qw.get('0.5'))} us, p99 "
              f"{fmt(qw.get('0.99'))} us")
    # The overhead target names no load, so it is checked in every scenario of whole answers
    # that ran ((d)'s overhead includes relaying the stream).
    for key in ("a", "b", "c", "e"):
        if key not in results:
            continue
        o = results[key]["gateway_metrics"]["overhead"]
        if o["p50_us_bucketed"] is not None:
            checks.append((f"({key}) overhead p50 <= {TARGET_OVERHEAD_P50_US} us (from /metrics)",
                           o["p50_us_bucketed"] <= TARGET_OVERHEAD_P50_US,
                           f"p50 ~{o['p50_us_bucketed']:.1f} us, mean {o['mean_us']:.1f} us"))
        if o["p99_us_bucketed"] is not None:
            checks.append((f"({key}) overhead p99 <= {TARGET_OVERHEAD_P99_US} us (from /metrics)",
                           o["p99_us_bucketed"] <= TARGET_OVERHEAD_P99_US,
                           f"p99 ~{o['p99_us_bucketed']:.1f} us"))

    warned = False
    for key in ("a", "b", "c", "d", "e"):
        if key in results:
            row = results[key]["rows"].get("bifrost", {})
            if reached_upstream(row) is False:
                if not warned:
                    print()
                warned = True
                print(f"WARNING ({key}): the gateway's requests did not reach the mock upstream "
                      f"({row.get('upstream_requests', 0):.0f} seen for "
                      f"{row.get('answered_total', 0):.0f} answers): this bifrost-http serves "
                      f"`openai` without its base_url; the bifrost rows are not comparable")
    results["gateway_reached_upstream"] = not warned

    if checks:
        print()
        print("targets (performance issue):")
        for name, ok, detail in checks:
            print(f"  {'met    ' if ok else 'NOT met'}  {name}: {detail}")
    results["targets"] = [{"target": n, "met": bool(ok), "figure": d} for n, ok, d in checks]


def machine():
    info = {"cpus": os.cpu_count(), "kernel": platform.release(),
            "load_avg_at_start": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="JSON results file (default bench/results/e2e-<time>.json)")
    ap.add_argument("--out", dest="out_flag", help="same as the positional argument")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--gateway-bin", help="the bifrost-http to measure (default: the build's)")
    ap.add_argument("--only", default="abcde", help="scenarios to run, e.g. 'ab' or 'c'")
    ap.add_argument("--quick", action="store_true", help="short runs (validation, not figures)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration-a", type=float, default=6.0)
    ap.add_argument("--duration-b", type=float, default=3.0)
    ap.add_argument("--rounds-b", type=int, default=7,
                    help="run (b) this many times, the proxy rows in a turning order; each row "
                         "reports its median round, and the targets use the median of the "
                         "per-round ratios (one round on a VM whose speed drifts decides little)")
    ap.add_argument("--duration-e", type=float, default=4.0)
    ap.add_argument("--rounds-e", type=int, default=5,
                    help="run (e) this many times, the proxy rows in a turning order")
    ap.add_argument("--rate-e", type=float, default=15000,
                    help="(e)'s fixed request rate: one every row sustains on this machine")
    ap.add_argument("--duration-c", type=float, default=12.0, help="including --warmup-c")
    ap.add_argument("--warmup-c", type=float, default=2.0)
    ap.add_argument("--rate-c", type=float, default=5000)
    ap.add_argument("--latency-c-ms", type=int, default=1000)
    ap.add_argument("--max-in-flight-c", type=int, default=8000)
    ap.add_argument("--model-direct", default="gpt-4o-mini")
    ap.add_argument("--model-gateway", default="openai/gpt-4o-mini")
    ap.add_argument("--loadgen-threads", type=int, default=1)
    ap.add_argument("--mock-threads", type=int, default=1)
    ap.add_argument("--io-threads", type=int, default=2, help="bifrost-http -io-threads")
    ap.add_argument("--no-threads-row", dest="io_mode_threads_row", action="store_false",
                    help="skip the (a)/(b) row of bifrost-http with -io-mode threads")
    ap.add_argument("--extra-row", action="append", default=[], metavar="NAME=FLAGS",
                    help="one more bifrost-http row in (a) and (b), this build with these "
                         "flags, e.g. spin0='-worker-spin-us 0' (repeatable)")
    ap.add_argument("--extra-bin", action="append", default=[], metavar="NAME=PATH",
                    help="one more bifrost-http row in (a), (b) and (e): another build "
                         "(repeatable)")
    ap.add_argument("--baseline-bin",
                    help="another bifrost-http build to measure in (a)/(b), as row 'baseline'")
    ap.add_argument("--worker-threads", type=int, default=os.cpu_count() or 1,
                    help="the provider's worker_threads (default: one per CPU; with bifrost-http's "
                         "-io-mode workers they also serve the client connections)")
    ap.add_argument("--pool-size", type=int, default=1000, help="client.initial_pool_size")
    ap.add_argument("--concurrency-ab", type=int, default=256)
    ap.add_argument("--buffer-ab", type=int, default=4096)
    ap.add_argument("--concurrency-c", type=int, default=8000)
    ap.add_argument("--buffer-c", type=int, default=20000)
    ap.add_argument("--gateway-log-level", default="warn",
                    help="bifrost-http -log-level (info logs a line per request)")
    ap.add_argument("--no-nginx", action="store_true", help="skip the nginx reference rows")
    ap.add_argument("--nginx-workers", default="auto")
    ap.add_argument("--nginx-c", action="store_true", help="an nginx row in scenario (c) too")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = ap.parse_args()
    if args.quick:
        args.duration_a = args.duration_b = 3.0
        args.rounds_b = min(args.rounds_b, 2)
        args.duration_e, args.rounds_e = 2.0, min(args.rounds_e, 2)
        args.duration_c = min(args.duration_c, 6.0)
    out = args.out_flag or args.out or os.path.join(
        ROOT, "bench", "results",
        "e2e-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")

    workdir = tempfile.mkdtemp(prefix="bifrost-e2e-")
    bench = Bench(args, workdir)
    results = {"machine": machine(), "started_at": datetime.datetime.now().isoformat(),
               "settings": {k: v for k, v in vars(args).items() if k not in ("out", "out_flag")},
               "nginx": bench.nginx}
    print(f"e2e: {results['machine'].get('cpus')} CPUs ({results['machine'].get('cpu', '?')}), "
          f"load average {results['machine']['load_avg_at_start'][0]:.2f}; nginx: "
          f"{bench.nginx or 'not installed (apt-get install nginx-light)'}; work dir {workdir}",
          flush=True)
    try:
        if any(k in args.only for k in "abde"):
            closed_scenarios(bench, results)
        if "c" in args.only:
            open_scenario(bench, results)
        report(results)
    finally:
        bench.procs.stop_all()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nresults: {out}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
