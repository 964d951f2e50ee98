#!/usr/bin/env python3
"""Smoke test of the bifrost-http executable: start it on a free port with the embedded mock
provider, send a chat request and a metrics scrape, stop it with SIGTERM (expecting exit status
0); start it with a config whose providers point at a small upstream server in this script and
check requests reach it over HTTP with the configured key (which never shows in the log), that
an upstream error keeps its status, that a request's `fallbacks` rescue it, and that SIGTERM lets
a request in flight finish before the exit; then check that a bad config exits non-zero naming
the file, the JSON path and the reason.

usage: bifrost_http_smoke.py PATH/TO/bifrost-http
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def start(binary, *args):
    proc = subprocess.Popen([binary, "-port", "0", *args], stderr=subprocess.PIPE, text=True)
    port = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "listening":
            port = rec["port"]
            break
    if port is None:
        proc.kill()
        fail("the server did not report its port:\n" + "".join(lines))
    # Keep reading its log so that it never blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, port, lines


class Upstream(BaseHTTPRequestHandler):
    """An OpenAI-format upstream: answers chat completions with the last user message reversed,
    or 429 with OpenAI's error JSON for model "limited", or after a second for model "slow"
    (setting `slow_started` when such a request arrives); records what it was sent."""
    protocol_version = "HTTP/1.1"
    seen = []
    slow_started = threading.Event()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Upstream.seen.append((self.path, self.headers.get("authorization"), body))
        if body["model"] == "slow":
            Upstream.slow_started.set()
            time.sleep(1.0)
        if body["model"] == "limited":
            status, answer = 429, {"error": {"message": "slow down", "type": "rate_limit",
                                             "code": "rate_limit_exceeded"}}
        else:
            text = body["messages"][-1]["content"][::-1]
            status, answer = 200, {
                "id": "up-1", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def post(url, payload):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def check_exposition(metrics):
    """Validates the /metrics text with Prometheus' promtool when it is installed (required when
    BIFROST_REQUIRE_TEST_TOOLS=1, as in CI)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("BIFROST_REQUIRE_TEST_TOOLS") == "1":
            fail("promtool is not installed (scripts/install-test-deps.sh)")
        print("promtool not installed: exposition check skipped")
        return
    check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True,
                           text=True, timeout=30)
    # promtool exits 1 for format errors, 3 for lint findings (naming advice) only.
    if check.returncode not in (0, 3) or "error" in check.stderr.lower():
        fail(f"promtool rejects the exposition ({check.returncode}):\n{check.stdout}{check.stderr}")
    if check.returncode == 3:
        print("promtool lint advice:\n" + check.stdout + check.stderr)


def stop(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("no exit within 30 s of SIGTERM")
    if code != 0:
        fail(f"exit status {code} after SIGTERM:\n" + "".join(log))


def check_real_upstream(binary):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{upstream.server_address[1]}"
    secret = "sk-smoke-secret-1234567890"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump({"providers": {
                "openai": {"keys": [{"value": "env.BIFROST_SMOKE_KEY", "models": [], "weight": 1}],
                           "network_config": {"base_url": url}},
                "sgl": {"network_config": {"base_url": url + "/"}}}}, f)
        os.environ["BIFROST_SMOKE_KEY"] = secret
        proc, port, log = start(binary, "-config", path, "-log-level", "debug")
        base = f"http://127.0.0.1:{port}"
        msgs = [{"role": "user", "content": "gateway"}]
        status, answer = post(base + "/v1/chat/completions", {"model": "openai/gpt-4o",
                                                               "messages": msgs})
        if status != 200 or answer["choices"][0]["message"]["content"] != "yawetag":
            fail(f"openai through the gateway: {status} {answer}")
        if Upstream.seen[-1][:2] != ("/v1/chat/completions", "Bearer " + secret):
            fail(f"the upstream saw {Upstream.seen[-1][:2]}")
        if Upstream.seen[-1][2]["model"] != "gpt-4o":
            fail(f"the upstream got model {Upstream.seen[-1][2]['model']!r}")
        status, answer = post(base + "/v1/chat/completions", {"model": "sgl/local",
                                                               "messages": msgs})
        if status != 200 or Upstream.seen[-1][1] is not None:
            fail(f"keyless sgl through the gateway: {status} {answer} {Upstream.seen[-1][:2]}")
        status, answer = post(base + "/v1/chat/completions", {"model": "openai/limited",
                                                               "messages": msgs})
        if status != 429 or answer["error"]["message"] != "slow down":
            fail(f"an upstream 429 became {status} {answer}")
        status, answer = post(base + "/v1/chat/completions", {
            "model": "openai/limited", "fallbacks": ["sgl/rescue"], "messages": msgs})
        if status != 200 or answer["choices"][0]["message"]["content"] != "yawetag" or \
                Upstream.seen[-1][2]["model"] != "rescue":
            fail(f"the fallback did not answer: {status} {answer}")
        # SIGTERM while a request is in flight: it is answered, then the process exits 0.
        slow = {}
        def slow_request():
            slow["result"] = post(base + "/v1/chat/completions", {"model": "openai/slow",
                                                                  "messages": msgs})
        t = threading.Thread(target=slow_request)
        t.start()
        if not Upstream.slow_started.wait(10):
            fail("the slow request never reached the upstream")
        stop(proc, log)
        t.join(10)
        if slow.get("result", (None, None))[0] != 200:
            fail(f"the request in flight at SIGTERM was not answered: {slow.get('result')}")
        if any(secret in line for line in log):
            fail("the provider key appears in the log")
    upstream.shutdown()


def main():
    binary = sys.argv[1]

    proc, port, log = start(binary, "-log-level", "info")
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"model": "mock/gpt-4o-mini",
                       "messages": [{"role": "user", "content": "Hello"}]}).encode()
    with urllib.request.urlopen(base + "/v1/chat/completions", data=body, timeout=10) as r:
        answer = json.load(r)
    content = answer["choices"][0]["message"]["content"]
    if content != "Echo: Hello":
        fail(f"unexpected answer {content!r}")
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    if 'bifrost_http_requests_total{route="/v1/chat/completions",status="200"} 1' not in metrics:
        fail("metrics lack the chat request:\n" + metrics)
    check_exposition(metrics)
    stop(proc, log)

    check_real_upstream(binary)

    # Flags: --help lists Bifrost's flags and exits 0; a bad flag or value exits 2 saying which.
    helped = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    if helped.returncode != 0:
        fail(f"--help exited {helped.returncode}")
    for flag in ("-config", "-host", "-port", "-pool-size", "-drop-excess-requests",
                 "-log-level", "-io-mode", "-io-threads", "-worker-spin-us"):
        if flag not in helped.stdout:
            fail(f"--help does not list {flag}: {helped.stdout}")
    for args, says in ((["-no-such-flag", "1"], "no-such-flag"), (["-port", "http"], "port"),
                       (["-io-mode", "fibers"], "io-mode"),
                       (["-worker-spin-us", "-5"], "worker-spin-us")):
        bad = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)
        if bad.returncode != 2 or says not in bad.stderr:
            fail(f"{args} exited {bad.returncode}: {bad.stderr}")
    proc, port, log = start(binary, "-host", "127.0.0.1", "-pool-size", "8",
                            "-drop-excess-requests", "-log-level=info", "-worker-spin-us", "0")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                timeout=10) as r:
        if r.status != 200:
            fail(f"with flags set, a chat request got {r.status}")
    stop(proc, log)
    if not any('"msg":"request"' in line for line in log):
        fail("no request line at -log-level=info:\n" + "".join(log))
    if not any('"connections":"workers"' in line for line in log):
        fail("connections are not on the workers by default:\n" + "".join(log))
    # -io-mode threads: the connections on I/O threads of their own.
    proc, port, log = start(binary, "-io-mode", "threads", "-io-threads", "3")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                timeout=10) as r:
        if r.status != 200:
            fail(f"with -io-mode threads, a chat request got {r.status}")
    stop(proc, log)
    if not any('"connections":"io_threads"' in line and '"io_threads":3' in line
               for line in log):
        fail("-io-mode threads -io-threads 3 not in the listening line:\n" + "".join(log))

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump({"providers": {"openai": {"keys": [
                {"value": "env.BIFROST_SMOKE_UNSET_VAR", "models": [], "weight": 1}]}}}, f)
        env = {k: v for k, v in os.environ.items() if k != "BIFROST_SMOKE_UNSET_VAR"}
        bad = subprocess.run([binary, "-config", path, "-port", "0"], capture_output=True,
                             text=True, timeout=30, env=env)
        if bad.returncode == 0:
            fail("a bad config exited with status 0")
        for part in (path, "providers.openai.keys[0].value", "BIFROST_SMOKE_UNSET_VAR"):
            if part not in bad.stderr:
                fail(f"the bad-config message lacks {part!r}: {bad.stderr}")

    print("bifrost-http smoke test passed")


if __name__ == "__main__":
    main()
