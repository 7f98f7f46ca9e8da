"""Benchmark: how many requests verify sends per group, and what that costs at a given rate.

    /work/venv/bin/python bench/bench_verify.py [--groups 300] [--rate-limit 10] [--concurrent 5]

A fake Immich (``synthetic:N``) behind a real HTTP server on loopback; the plan is analyzed,
every group accepted and executed with the limits off, then ``verify -b`` runs with the given
limits. Printed: requests per group (from the fake's request log), wall time, the rate
achieved, and what that means for 20,000 groups at the same limits. verify reads every kept
copy once (``GET /assets/{id}``) and checks the losers by checksum, 1,000 per request, so its
time at scale is the request rate's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from immich_dupes.analysis import decide
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.verify import verify
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient


async def run(groups: int, rate: float, concurrent: int) -> None:
    fake = FakeImmich(library=f"synthetic:{groups}", original_size=2_000)
    with FakeServer(fake) as srv, tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / "backup"
        async with ImmichClient(srv.url, fake.api_key, rate_limit=100_000, concurrency=16) as c:
            plan = await analyze(c)
            plan.groups = [decide.accept(g) for g in plan.groups]
            rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
            if rep.failed:
                raise SystemExit(f"execute failed for {rep.failed} groups")
        fake.run_jobs()
        first = len(fake.request_log)
        t0 = time.perf_counter()
        async with ImmichClient(srv.url, fake.api_key, rate_limit=rate, concurrency=concurrent) as c:
            vrep = await verify(c, plan, backup_dir=backup)
        wall = time.perf_counter() - t0
        requests = len(fake.request_log) - first
    per_group = requests / len(plan.groups)
    assets = sum(len(g.assets) for g in plan.groups)
    print(f"synthetic:{groups}: {len(plan.groups)} groups, {assets} assets")
    print(f"verify -b at {rate:g} req/s, {concurrent} at once: {requests} requests "
          f"({per_group:.2f} per group), {wall:.1f} s, {requests / wall:.1f} req/s achieved; "
          f"{len(vrep.anomalies)} anomalies, {len(vrep.notes)} notes")
    at_scale = 20_000 * per_group / (requests / wall)
    print(f"20,000 groups at the same limits: about {at_scale / 60:.0f} minutes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=300)
    ap.add_argument("--rate-limit", type=float, default=10.0)
    ap.add_argument("--concurrent", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(run(args.groups, args.rate_limit, args.concurrent))


if __name__ == "__main__":
    main()
