#!/usr/bin/env python3
"""Smoke test of the bifrost-http executable: start it on a free port with the embedded mock
provider, send a chat request and a metrics scrape, stop it with SIGTERM (expecting exit status
0); then check that a bad config exits non-zero naming the file, the JSON path and the reason.

usage: bifrost_http_smoke.py PATH/TO/bifrost-http
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request


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
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("no exit within 30 s of SIGTERM")
    if code != 0:
        fail(f"exit status {code} after SIGTERM:\n" + "".join(log))

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
