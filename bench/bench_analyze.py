"""Benchmark: analyze against a synthetic library on loopback, compared with a bare download.

    .venv/bin/python bench/bench_analyze.py [--groups 20000] [--runs 3]

Starts the fake Immich (`immich-dupes demo --serve-only --library synthetic:N`) in its own
process, then measures
  * a bare streaming download of GET /api/duplicates (httpx, body discarded),
  * `immich-dupes analyze` in a child process: wall time and peak RSS (from wait4),
and prints the ratio analyze / bare download. Goals: ratio ≤ 1.5, peak memory < 400 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def start_server(groups: int) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "immich_dupes", "demo", "--serve-only", "--library", f"synthetic:{groups}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().split("=", 1)[1]
    key = proc.stdout.readline().strip().split("=", 1)[1]
    return proc, url, key


def bare_download(url: str, key: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    size = 0
    with httpx.Client(timeout=600) as c, c.stream(
        "GET", f"{url}/api/duplicates", headers={"x-api-key": key}
    ) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20):
            size += len(chunk)
    return time.perf_counter() - t0, size


def run_analyze(url: str, key: str, out: Path) -> tuple[float, int]:
    env = {**os.environ, "IMMICH_URL": url, "IMMICH_API_KEY": key}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "immich_dupes", "analyze", "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"analyze failed with exit code {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    proc, url, key = start_server(args.groups)
    print(f"fake Immich with synthetic:{args.groups} up in {time.perf_counter() - t0:.1f} s at {url}")
    try:
        bare_download(url, key)  # warm the server's caches once, as a real server's would be
        bare = [bare_download(url, key) for _ in range(args.runs)]
        bare_s = statistics.median(t for t, _ in bare)
        size = bare[0][1]
        with tempfile.TemporaryDirectory() as tmp:
            runs = [run_analyze(url, key, Path(tmp) / f"plan{i}.json") for i in range(args.runs)]
            plan_size = (Path(tmp) / "plan0.json").stat().st_size
        wall = statistics.median(t for t, _ in runs)
        rss = max(m for _, m in runs)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"GET /api/duplicates: {size / 1e6:.1f} MB, bare download median {bare_s:.2f} s")
    print(f"analyze: median wall {wall:.2f} s over {args.runs} runs, peak RSS {rss / 1e6:.0f} MB, plan {plan_size / 1e6:.1f} MB")
    print(f"ratio analyze / bare download: {wall / bare_s:.2f} (goal ≤ 1.5); peak memory goal < 400 MB")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
