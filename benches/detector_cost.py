#!/usr/bin/env python3
"""What the detectors cost: `tapir analyze` with every detector on against the core pipeline
alone (every detector switched off), run in turns so that both see the same machine state,
on the inputs benches/throughput.sh builds. Prints the median wall time, packets/s and peak
RSS of each and the difference. Figures, not a pass/fail test.

    benches/throughput.sh            # once: builds the release binary and the inputs
    benches/detector_cost.py [RUNS]  # default 25 runs of each
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAPIR = os.path.join(ROOT, "target", "release", "tapir")
WORK = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tapir-bench")
INPUTS = ["bench_x10.pcap", "synflood_x20.pcap"]
RULES = ["port_scan", "brute_force", "syn_flood", "dns_tunneling", "traffic_spike"]


def run(args):
    """Wall seconds and peak RSS (MB) of one run."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(args)} failed (status {status})")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as core:
        core.write("".join(f"[detectors.{r}]\nenabled = false\n" for r in RULES))
    modes = {"all": [], "core": ["--config", core.name]}
    for name in INPUTS:
        path = os.path.join(WORK, name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run benches/throughput.sh first")
        out = subprocess.run([TAPIR, "analyze", "--json", path], capture_output=True, check=True)
        packets = json.loads(out.stdout)["packets"]
        samples = {mode: [] for mode in modes}
        for _ in range(runs):
            for mode, extra in modes.items():
                samples[mode].append(run([TAPIR, "analyze", "--json", *extra, path]))
        median = {
            mode: (statistics.median(s[0] for s in runs_), statistics.median(s[1] for s in runs_))
            for mode, runs_ in samples.items()
        }
        print(f"{name} ({packets:,} packets, median of {runs} runs in turns)")
        for mode, (secs, rss) in median.items():
            print(f"  {mode:5} {secs * 1000:6.1f} ms  {packets / secs / 1e6:5.2f} Mpps  {rss:5.1f} MB")
        (t_all, m_all), (t_core, m_core) = median["all"], median["core"]
        print(f"  detectors: throughput {t_core / t_all * 100 - 100:+.1f} %, "
              f"peak RSS {m_all / m_core * 100 - 100:+.1f} %")
    os.unlink(core.name)


if __name__ == "__main__":
    main()
