#!/usr/bin/env python3
"""The front door under hostile clients, release build, on loopback.

Starts `tapir replay --speed 0` of the hydra capture (it goes on serving after the replay) with a password set and no login
throttle, then:
  1. 600 keep-alive clients, each asking /healthz once a second (beyond max_connections);
  2. 64 clients sending request bodies one byte a second (slow bodies);
  3. logins from 16 connections as fast as they are answered;
and prints /healthz latency from a fresh connection during each, the process's RSS and thread
count, and logins per second with how many were refused as busy (503).
Usage: benches/front_door.py [SECONDS per phase, default 20]
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tapir")
PCAP = os.path.join(ROOT, "..", "shared", "pcaps", "bruteforce", "traceshare_hydra_4_tasks.pcap")
PASSWORD = "the right password"
SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return int(fields["VmRSS"][0]) * 1024, int(fields["Threads"][0])


def healthz(port):
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = s.recv(4096)
            ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, time.monotonic() - start


def sampler(pid, port, stop, out):
    while not stop.is_set():
        rss, threads = proc_status(pid)
        ok, took = healthz(port)
        out.append((rss, threads, ok, took))
        time.sleep(0.5)


def report(name, samples):
    lat = sorted(t for _, _, _, t in samples)
    failed = sum(1 for _, _, ok, _ in samples if not ok)
    print(
        f"{name}: /healthz p50 {statistics.median(lat) * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms, "
        f"{failed} failed of {len(lat)}; peak RSS {max(s[0] for s in samples) / 1e6:.1f} MB, "
        f"peak threads {max(s[1] for s in samples)}"
    )


def keep_alive_client(port, stop, counts):
    s = None
    while not stop.is_set():
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if not s.recv(4096):
                raise OSError("closed")
            counts["ok"] += 1
        except OSError:
            counts["reconnects"] += 1
            if s is not None:
                s.close()
            s = None
        stop.wait(1.0)
    if s is not None:
        s.close()


def slow_body_client(port, stop):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n{"
        )
        while not stop.is_set():
            s.sendall(b" ")
            stop.wait(1.0)
    except OSError:
        pass


def login_client(port, stop, codes):
    body = json.dumps({"password": "wrong password"}).encode()
    request = (
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    s = None
    while not stop.is_set():
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(request)
            data = s.recv(4096)
            code = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0
            codes[code] = codes.get(code, 0) + 1
            if code == 0 or b"Connection: close" in data:
                s.close()
                s = None
        except OSError:
            codes[0] = codes.get(0, 0) + 1
            s = None


def phase(name, pid, port, workers):
    stop, samples = threading.Event(), []
    threads = [threading.Thread(target=sampler, args=(pid, port, stop, samples))]
    threads += [threading.Thread(target=w, args=(stop,)) for w in workers]
    for t in threads:
        t.start()
    time.sleep(SECS)
    stop.set()
    for t in threads:
        t.join()
    report(name, samples)


def main():
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "db")
        subprocess.run([BIN, "passwd", "--db-path", db], input=PASSWORD + "\n", text=True, check=True,
                       stderr=subprocess.DEVNULL)
        cfg = os.path.join(d, "tapir.toml")
        with open(cfg, "w") as f:
            f.write("[auth]\nlogin_free_attempts = 1000000\n")
        child = subprocess.Popen(
            [BIN, "replay", PCAP, "--speed", "0", "--host", "127.0.0.1", "--port", "0",
             "--db-path", db, "--config", cfg],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # The first line on stdout says where it serves.
        line = child.stdout.readline()
        base = next(w for w in line.split() if w.startswith("http://"))
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        threading.Thread(target=lambda: [None for _ in child.stdout], daemon=True).start()
        try:
            time.sleep(1)
            rss, threads = proc_status(child.pid)
            print(f"idle: RSS {rss / 1e6:.1f} MB, {threads} threads")
            counts = {"ok": 0, "reconnects": 0}
            phase("600 keep-alive clients", child.pid, port,
                  [lambda stop: keep_alive_client(port, stop, counts) for _ in range(600)])
            print(f"  keep-alive answers {counts['ok']}, reconnects after eviction {counts['reconnects']}")
            phase("64 slow bodies", child.pid, port,
                  [lambda stop: slow_body_client(port, stop) for _ in range(64)])
            codes = {}
            rss_before, _ = proc_status(child.pid)
            phase("logins from 16 connections", child.pid, port,
                  [lambda stop: login_client(port, stop, codes) for _ in range(16)])
            rss_after, _ = proc_status(child.pid)
            hashed = codes.get(401, 0) + codes.get(200, 0)
            print(f"  logins hashed {hashed} ({hashed / SECS:.1f}/s), refused busy {codes.get(503, 0)}, "
                  f"other {sum(v for k, v in codes.items() if k not in (200, 401, 503))}; "
                  f"RSS {rss_before / 1e6:.1f} -> {rss_after / 1e6:.1f} MB")
        finally:
            child.terminate()
            child.wait(timeout=30)


if __name__ == "__main__":
    main()
