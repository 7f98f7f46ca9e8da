"""Benchmark: execute against a synthetic library served on loopback.

    /work/venv/bin/python bench/bench_execute.py [--groups 1000] [--default-groups 1000]
                                                 [--original-size 1000000] [--no-default]

Each scenario gets a fresh fake Immich (``synthetic:N``: 2–3 assets per group, originals of
``--original-size`` bytes) in its own process behind a real HTTP server, and a client process
that analyzes (limits off), accepts every group, then runs execute with the scenario's limits.
Printed per scenario: requests per group acted on, wall time, backup bytes/s, the peak RSS of
the client during execute (VmHWM reset just before), and rate-limit use (requests/s achieved
against the configured rate, and the most requests the fake saw in any 1-s window).

Scenarios: default limits (10 req/s, 5 at once) on ``--default-groups`` groups; raised limits
(200 req/s, 16 at once) on ``--groups`` and on a quarter of that (memory flat in N?).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import shutil
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from immich_dupes.fake.measure import max_in_window


def serve(groups: int, original_size: int, conn: Connection) -> None:
    """The fake Immich in its own process; sends (url, key), later its request log."""
    from immich_dupes.fake import FakeImmich, FakeServer

    fake = FakeImmich(library=f"synthetic:{groups}", original_size=original_size)
    with FakeServer(fake) as srv:
        conn.send((srv.url, fake.api_key))
        conn.recv()
        conn.send([(r.t_start, r.method, r.path, r.status) for r in fake.request_log])
        conn.recv()


def _vm(field: str) -> int:
    """A VmRSS/VmHWM line of /proc/self/status in bytes (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    """Reset VmHWM so it reports the peak from now on (Linux ≥ 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def client(url: str, key: str, rate: float, concurrent: int, backup: str, conn: Connection) -> None:
    """Analyze, accept all, execute with the scenario's limits; send the figures back."""
    import resource

    from immich_dupes.analysis import decide
    from immich_dupes.engine.analyze import analyze
    from immich_dupes.engine.execute import ExecuteOptions, execute
    from immich_dupes.immich.client import ImmichClient

    async def go() -> dict[str, Any]:
        async with ImmichClient(url, key, rate_limit=10_000, concurrency=16) as c:
            plan = await analyze(c)
        plan.groups = [decide.accept(g) for g in plan.groups]
        plan.refresh_counts()
        rss_before = _vm("VmRSS")
        _reset_peak()
        t_start = time.monotonic()
        async with ImmichClient(url, key, rate_limit=rate, concurrency=concurrent) as c:
            rep = await execute(c, plan, ExecuteOptions(backup_dir=Path(backup)))
        t_end = time.monotonic()
        return {
            "groups": len(plan.groups),
            "done": rep.done,
            "failed": rep.failed,
            "skipped": rep.skipped,
            "requests": rep.requests,
            "bytes": rep.bytes_backed_up,
            "wall": t_end - t_start,
            "t_start": t_start,
            "t_end": t_end,
            "rss_before": rss_before,
            "rss_peak": _vm("VmHWM"),
            "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }

    conn.send(asyncio.run(go()))


def scenario(name: str, groups: int, original_size: int, rate: float, concurrent: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    srv_conn, srv_child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(groups, original_size, srv_child), daemon=True)
    server.start()
    url, key = srv_conn.recv()
    backup = tempfile.mkdtemp(prefix="bench-execute-")
    shutil.rmtree(backup)
    try:
        cli_conn, cli_child = ctx.Pipe()
        proc = ctx.Process(target=client, args=(url, key, rate, concurrent, backup, cli_child))
        proc.start()
        figures: dict[str, Any] = cli_conn.recv()
        proc.join()
        srv_conn.send("log")
        log: list[tuple[float, str, str, int]] = srv_conn.recv()
        srv_conn.send("stop")
        server.join(timeout=10)
    finally:
        shutil.rmtree(backup, ignore_errors=True)
    starts = [t for t, _m, _p, _s in log if figures["t_start"] <= t <= figures["t_end"]]
    span = (max(starts) - min(starts)) if len(starts) > 1 else figures["wall"]
    figures.update(
        name=name,
        rate=rate,
        concurrent=concurrent,
        seen=len(starts),
        achieved=len(starts) / span if span > 0 else 0.0,
        window_max=max_in_window(starts),
        downloads=sum(1 for t, _m, p, _s in log if p.endswith("/original") and t >= figures["t_start"]),
    )
    return figures


def show(f: dict[str, Any]) -> None:
    acted = max(1, f["done"])
    mb = f["bytes"] / 1e6
    print(f"\n== {f['name']}: {f['groups']} groups, limits {f['rate']:g} req/s × {f['concurrent']}")
    print(f"  outcome         {f['done']} done, {f['skipped']} skipped, {f['failed']} failed")
    print(f"  requests        {f['requests']} ({f['requests'] / acted:.2f} per group acted on; "
          f"{f['downloads']} downloads = {f['downloads'] / acted:.2f} per group)")
    print(f"  wall time       {f['wall']:.1f} s ({f['wall'] / acted * 1000:.1f} ms per group)")
    print(f"  backups         {mb:.1f} MB, {mb / f['wall']:.1f} MB/s")
    print(f"  rate limit      {f['achieved']:.1f} req/s achieved vs {f['rate']:g} configured "
          f"({100 * f['achieved'] / f['rate']:.0f} %); max {f['window_max']} in any 1-s window")
    print(f"  client memory   RSS {f['rss_before'] / 1e6:.0f} MB before execute, "
          f"peak {f['rss_peak'] / 1e6:.0f} MB during (+{(f['rss_peak'] - f['rss_before']) / 1e6:.0f} MB); "
          f"process max {f['ru_maxrss'] / 1e6:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=1000, help="groups for the raised-limit run (default 1000)")
    ap.add_argument("--default-groups", type=int, default=None,
                    help="groups for the default-limit run (default: --groups; 10 req/s makes it slow)")
    ap.add_argument("--original-size", type=int, default=1_000_000, help="bytes per original (default 1 MB)")
    ap.add_argument("--no-default", action="store_true", help="skip the default-limit run")
    args = ap.parse_args()

    results = []
    if not args.no_default:
        results.append(scenario("default limits", args.default_groups or args.groups,
                                args.original_size, 10.0, 5))
        show(results[-1])
    results.append(scenario("raised limits", args.groups, args.original_size, 200.0, 16))
    show(results[-1])
    quarter = max(10, args.groups // 4)
    results.append(scenario("raised limits, a quarter of the groups", quarter, args.original_size, 200.0, 16))
    show(results[-1])
    big, small = results[-2], results[-1]
    print(f"\nmemory during execute: +{(big['rss_peak'] - big['rss_before']) / 1e6:.0f} MB for {big['groups']} groups, "
          f"+{(small['rss_peak'] - small['rss_before']) / 1e6:.0f} MB for {small['groups']} groups")


if __name__ == "__main__":
    main()
