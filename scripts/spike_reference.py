#!/usr/bin/env python3
"""The published traffic-spike rule, applied to tshark's frame times and lengths.

An independent reference for tests/detectors.rs: it reads nothing of tapir's, only
`tshark -T fields -e frame.time_epoch -e frame.len`, and applies the rule as the README
states it: each second's bytes (frame.len, the length on the wire) against the previous
300 s of seconds (quiet seconds count as zero), z = (bytes - mean) / population std-dev
(at least 1), judged after 60 s of history, alerting at z >= 3.0 and >= 100,000 bytes/s.
Packet time never goes back (a frame older than the latest counts in the latest second),
and a jump longer than the history starts learning afresh. Spike seconds less than
`suppression` (300 s) apart are one alert episode.

Usage: scripts/spike_reference.py CAPTURE...
Prints, per capture, the spike seconds (offset from the first frame, bytes, z) and the
number of episodes.
"""

import math
import subprocess
import sys
from collections import deque

HISTORY = 300
LEARNING = 60
Z = 3.0
FLOOR = 100_000
SUPPRESSION = 300


def seconds(path):
    """(second, bytes) in packet order, on a clock that never goes back."""
    # Not checked: tshark exits non-zero on a capture cut short, after the frames it read.
    out = subprocess.run(
        ["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len"],
        capture_output=True, text=True, check=False,
    ).stdout
    clock = None
    current = None
    for line in out.splitlines():
        epoch, length = line.split("\t")
        if not epoch or not length:
            continue
        sec = math.floor(float(epoch))
        clock = sec if clock is None else max(clock, sec)
        if current is not None and current[0] == clock:
            current[1] += int(length)
            continue
        if current is not None:
            yield tuple(current)
        current = [clock, int(length)]
    if current is not None:
        yield tuple(current)


def spikes(path):
    history = deque()
    found = []
    previous = None
    for sec, size in seconds(path):
        if previous is not None:
            gap = sec - previous - 1
            if gap >= HISTORY:
                history.clear()
            else:
                history.extend([0] * gap)
                while len(history) > HISTORY:
                    history.popleft()
        if len(history) >= LEARNING:
            n = len(history)
            mean = sum(history) / n
            std = math.sqrt(max(sum(b * b for b in history) / n - mean * mean, 0.0))
            z = (size - mean) / max(std, 1.0)
            if z >= Z and size >= FLOOR:
                found.append((sec, size, z))
        history.append(size)
        if len(history) > HISTORY:
            history.popleft()
        previous = sec
    return found


def episodes(found):
    count, last = 0, None
    for sec, _, _ in found:
        if last is None or sec - last >= SUPPRESSION:
            count += 1
        last = sec
    return count


def main():
    for path in sys.argv[1:]:
        found = spikes(path)
        first = next(seconds(path), (0, 0))[0]
        print(f"{path}: {episodes(found)} episode(s)")
        for sec, size, z in found:
            print(f"  +{sec - first} s  {size} B  z={z:.1f}")


if __name__ == "__main__":
    main()
