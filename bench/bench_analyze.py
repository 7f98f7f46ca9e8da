"""Benchmark: analyze against a synthetic library on loopback, compared with a bare download.

    .venv/bin/python bench/bench_analyze.py [--groups 20000] [--runs 3] [--server cached|uncached|both]

Starts the fake Immich (`immich-dupes demo --serve-only --library synthetic:N`) in its own
process, then measures
  * a bare streaming download of GET /api/duplicates (httpx, body discarded),
  * `immich-dupes analyze` in a child process: wall time and peak RSS (from wait4),
and prints the ratio analyze / bare download. Goals: ratio ≤ 1.5, peak memory < 400 MB.

Two kinds of server, because the denominator decides the ratio:
  * cached: the fake keeps the serialized answer and only sends it (no real server does that);
  * uncached (`--uncached`): the fake builds the answer anew for every request, as a server
    does, so the bare download includes the server's own work.
Then one analyze in this process, timed phase by phase, says where analyze's own time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def start_server(groups: int, uncached: bool) -> tuple[subprocess.Popen[str], str, str]:
    cmd = [sys.executable, "-m", "immich_dupes", "demo", "--serve-only", "--library", f"synthetic:{groups}"]
    if uncached:
        cmd.append("--uncached")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().split("=", 1)[1]
    key = proc.stdout.readline().strip().split("=", 1)[1]
    return proc, url, key


def bare_download(url: str, key: str) -> tuple[float, float, int]:
    """(seconds to the last byte, seconds to the first byte, size)."""
    t0 = time.perf_counter()
    first = 0.0
    size = 0
    with httpx.Client(timeout=600) as c, c.stream(
        "GET", f"{url}/api/duplicates", headers={"x-api-key": key}
    ) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20):
            if not size:
                first = time.perf_counter() - t0
            size += len(chunk)
    return time.perf_counter() - t0, first, size


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


def startup_seconds() -> float:
    """A child Python that imports what `immich-dupes analyze` imports, and exits."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import immich_dupes.cli, immich_dupes.commands.analyze"], check=True
    )
    return time.perf_counter() - t0


def phases(url: str, key: str, out: Path) -> dict[str, float]:
    """One analyze in this process, with the time of each phase."""
    from immich_dupes.analysis.plan import save_plan
    from immich_dupes.engine.analyze import ANALYZE_PERMISSIONS, analyze
    from immich_dupes.engine.events import Event
    from immich_dupes.immich.client import ImmichClient

    last_download = 0.0

    def report(e: Event) -> None:
        nonlocal last_download
        if e.phase == "download":
            last_download = time.perf_counter()

    async def go() -> dict[str, float]:
        async with ImmichClient(url, key) as c:
            t0 = time.perf_counter()
            await c.connect(ANALYZE_PERMISSIONS)
            t1 = time.perf_counter()
            plan = await analyze(c, None, report)
            t2 = time.perf_counter()
        save_plan(plan, out)
        t3 = time.perf_counter()
        return {
            "connect": t1 - t0,
            "download and parse": last_download - t1,
            "decide": t2 - last_download,
            "write the plan": t3 - t2,
        }

    return asyncio.run(go())


def measure(groups: int, runs: int, uncached: bool) -> dict[str, float]:
    kind = "uncached (builds every answer)" if uncached else "cached (only sends its answer)"
    t0 = time.perf_counter()
    proc, url, key = start_server(groups, uncached)
    print(f"\nfake Immich, {kind}, synthetic:{groups}: up in {time.perf_counter() - t0:.1f} s at {url}")
    try:
        bare_download(url, key)  # the first answer also builds the fake's indexes
        bare = [bare_download(url, key) for _ in range(runs)]
        bare_s = statistics.median(t for t, _, _ in bare)
        first_s = statistics.median(f for _, f, _ in bare)
        size = bare[0][2]
        with tempfile.TemporaryDirectory() as tmp:
            runs_ = [run_analyze(url, key, Path(tmp) / f"plan{i}.json") for i in range(runs)]
            plan_size = (Path(tmp) / "plan0.json").stat().st_size
            split = phases(url, key, Path(tmp) / "phases.json")
        wall = statistics.median(t for t, _ in runs_)
        rss = max(m for _, m in runs_)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"  GET /api/duplicates: {size / 1e6:.1f} MB; bare download median {bare_s:.2f} s (first byte {first_s:.2f} s)")
    print(
        f"  analyze: median wall {wall:.2f} s over {runs} runs, peak RSS {rss / 1e6:.0f} MB, "
        f"plan {plan_size / 1e6:.1f} MB"
    )
    print("  in-process phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items()))
    print(f"  ratio analyze / bare download: {wall / bare_s:.2f} (goal ≤ 1.5); peak memory goal < 400 MB")
    return {"bare": bare_s, "wall": wall, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--server", choices=["cached", "uncached", "both"], default="both")
    args = ap.parse_args()

    start = statistics.median(startup_seconds() for _ in range(3))
    print(f"python start + imports of analyze: {start:.2f} s (paid by analyze, not by the bare download)")
    results = {}
    for uncached in (False, True):
        if args.server == ("cached" if uncached else "uncached"):
            continue
        results[uncached] = measure(args.groups, args.runs, uncached)
    for uncached, r in results.items():
        own = r["wall"] - r["bare"]
        print(
            f"{'uncached' if uncached else 'cached'}: analyze's own time beyond the download "
            f"{own:.2f} s ({own / args.groups * 10000:.2f} s per 10,000 groups); "
            f"1.5x would allow {0.5 * r['bare']:.2f} s"
        )
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
