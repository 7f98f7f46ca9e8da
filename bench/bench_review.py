"""Benchmark of the review app with a plan of 10,000 groups (headless, halfcell pictures).

    /work/venv/bin/python bench/bench_review.py [--groups N] [--switches N] [--from-fake]
                                                [--pictures gradient|photo]

Measures, in a fresh process that only loads the plan and runs the app:
  * start → first usable frame: plan read + validated, app built, list filled, first group
    (cards + diff) drawn;
  * group switch (``j``), thumbnails cached in memory: key → new group drawn (layout + render
    done), p50 / p95 / max, wall and CPU time, and the key handler alone;
  * a held-down ``j`` (50 presses queued): the app skips groups that are already passed, so
    only the last one is drawn;
  * a few other interactions through Pilot (filter change, accept, save of the whole plan);
  * peak memory (max RSS of the measuring process).
Pictures: ``gradient`` (default; smooth, few colours) or ``photo`` (gradients plus coarse
noise: hundreds of distinct colours per thumbnail, like a photo; the worst case for the
halfcell drawing and the colours it shares between pictures).
Goals (issue 4): first frame ≤ 1.5 s, switch p95 < 50 ms, memory < 300 MB. Prints figures,
asserts nothing: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

T_START = time.perf_counter()


def make_plan(path: Path, groups: int, from_fake: bool) -> None:
    """Write a plan of ``groups`` groups (run in a child process: its memory is not counted)."""
    from immich_dupes.analysis.plan import Plan, PlanAsset, PlanSettings, save_plan

    if from_fake:
        from immich_dupes.engine.analyze import analyze
        from immich_dupes.fake import FakeImmich
        from immich_dupes.immich.client import ImmichClient

        fake = FakeImmich(library=f"synthetic:{groups}")

        async def run() -> Plan:
            async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                                    rate_limit=1e6) as c:
                return await analyze(c)

        save_plan(asyncio.run(run()), path)
        return

    from immich_dupes.analysis.decide import build_group

    settings = PlanSettings()
    out = []
    base = datetime(2015, 1, 1, tzinfo=UTC)
    for g in range(groups):
        n = 2 + (g % 4 == 0)
        assets = []
        for i in range(n):
            conflict = g % 3 == 0 and i == 1
            assets.append(PlanAsset(
                id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"a{g}-{i}")),
                file_name=f"IMG_{g:05d}_{i}.jpg", mime="image/jpeg",
                width=4000 // (i + 1), height=3000 // (i + 1), file_size=4_000_000 // (i + 1),
                checksum=f"c{g}-{i}", captured_at=base + timedelta(hours=g),
                time_zone="Europe/Berlin", utc_offset_minutes=60 if conflict else 120,
                latitude=48.1 + (0.5 if conflict else 0), longitude=11.5,
                city="Munich", country="Germany", description="", is_favorite=i == 1,
            ))
        out.append(build_group(str(uuid.uuid5(uuid.NAMESPACE_OID, f"g{g}")), assets, settings))
    plan = Plan(created_at=datetime.now(UTC), server_url="http://bench/api",
                user_id=str(uuid.uuid5(uuid.NAMESPACE_OID, "user")), total_groups=0,
                total_assets=0, needs_review_count=0, groups=out)
    save_plan(plan, path)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def make_picture(seed: int, kind: str) -> Any:
    """A thumbnail-sized picture (see the module docstring for the kinds)."""
    from PIL import Image as PILImage

    grad = PILImage.linear_gradient("L").resize((250, 188))
    img = PILImage.merge("RGB", (grad, grad.rotate(90 + seed % 180), grad.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)))
    if kind == "photo":
        noise = [PILImage.effect_noise((40, 30), 70).resize((250, 188)) for _ in range(3)]
        img = PILImage.blend(img, PILImage.merge("RGB", noise), 0.35)
    return img


async def measure(path: Path, switches: int, cache_dir: Path, pictures: str = "gradient") -> dict[str, float]:
    from textual import events

    from immich_dupes.tui.app import make_app
    from immich_dupes.tui.screens.main import MainScreen
    from immich_dupes.tui.widgets.asset_card import AssetCard

    figures: dict[str, float] = {}
    t0 = time.perf_counter()
    app = make_app(path, image_protocol="halfcell", offline=True, cache_dir=cache_dir)
    figures["plan_load_s"] = time.perf_counter() - t0
    state = app.state
    state.filter = state.filter.__class__("all")  # every group, so there is always a next one
    # thumbnails cached: like the prefetcher, put the next groups' pictures in memory ahead
    # of time (outside the timed part); pictures, not flat colours, which the halfcell
    # renderer would merge into a few segments
    def prefetch(position: int) -> None:
        for p in range(position, min(position + 3, len(state.order))):
            for i, a in enumerate(state.group_at(p).assets):
                if app.pictures.cached(a, "thumbnail") is None:
                    app.pictures.cache.put(a, "thumbnail", make_picture(p * 3 + i, pictures))

    prefetch(0)

    async with app.run_test(size=(180, 50)) as pilot:
        main = app.screen
        assert isinstance(main, MainScreen)
        while main.shown_id is None:  # noqa: ASYNC110 - polling is the measurement
            await asyncio.sleep(0.001)
        await pilot.pause()
        figures["first_frame_s"] = time.perf_counter() - t0
        figures["first_frame_from_process_start_s"] = time.perf_counter() - T_START
        assert all(c.has_picture for c in main.query(AssetCard) if c.display)
        await asyncio.sleep(0.4)  # a person looks at the first group; the app tidies its heap

        # key → frame: the key event goes in as the terminal driver would send it; the clock
        # stops when the new group is shown and the screen's layout + render (what its refresh
        # timer does on the next tick) is done. Pilot.press/pause are not used for this: they
        # add idle-detection sleeps (~20 ms each) that are not the app's time.
        driver = app._driver
        assert driver is not None
        full_gcs: list[float] = []
        gc_start = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if info.get("generation") != 2:
                return
            if phase == "start":
                gc_start[0] = time.perf_counter()
            else:
                full_gcs.append(time.perf_counter() - gc_start[0])

        gc.callbacks.append(on_gc)
        times: list[float] = []
        cpu: list[float] = []
        handler: list[float] = []
        for _ in range(switches):
            before = main.shown_id
            prefetch((main.list_pos or 0) + 1)
            t = time.perf_counter()
            c = time.process_time()
            driver.send_message(events.Key("j", "j"))
            while main.shown_id == before:  # noqa: ASYNC110 - polling is the measurement
                await asyncio.sleep(0)
            handler.append(time.perf_counter() - t)
            for _ in range(3):
                await asyncio.sleep(0)
            app.screen._on_timer_update()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            await asyncio.sleep(0.005)  # a person does not press faster than the screen draws
        figures["switch_p50_ms"] = pct(times, 0.50) * 1000
        figures["switch_p95_ms"] = pct(times, 0.95) * 1000
        figures["switch_max_ms"] = max(times) * 1000
        # the key's own work (list, cards, diff rows updated); the paint after it is what
        # Textual's refresh timer does once per frame, so held-down keys are coalesced
        figures["switch_handler_p50_ms"] = pct(handler, 0.50) * 1000
        figures["switch_handler_p95_ms"] = pct(handler, 0.95) * 1000
        figures["switch_cpu_p50_ms"] = pct(cpu, 0.50) * 1000
        figures["switch_cpu_p95_ms"] = pct(cpu, 0.95) * 1000
        gc.callbacks.remove(on_gc)
        figures["full_gc_during_switches"] = float(len(full_gcs))
        figures["full_gc_mean_ms"] = statistics.mean(full_gcs) * 1000 if full_gcs else 0.0
        slowest = sorted(times)[-5:]
        print("slowest switches (ms):", [round(x * 1000) for x in slowest], file=sys.stderr)

        # a held-down key: 50 presses queued at once (pictures not prefetched: worst case)
        start_pos = main.list_pos or 0
        t = time.perf_counter()
        for _ in range(50):
            driver.send_message(events.Key("j", "j"))
        while (main.list_pos or 0) < start_pos + 50:  # noqa: ASYNC110 - polling is the measurement
            await asyncio.sleep(0)
        app.screen._on_timer_update()
        figures["held_key_ms_per_group"] = (time.perf_counter() - t) * 1000 / 50

        pilot_times: list[float] = []
        for _ in range(20):
            prefetch((main.list_pos or 0) + 1)
            t = time.perf_counter()
            await pilot.press("j")
            await pilot.pause()
            pilot_times.append(time.perf_counter() - t)
        figures["switch_via_pilot_p50_ms (incl. idle waits)"] = pct(pilot_times, 0.5) * 1000

        t = time.perf_counter()
        await pilot.pause()
        figures["pilot_idle_pause_ms (overhead)"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        await pilot.press("v")
        await pilot.pause()
        figures["filter_change_via_pilot_ms"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        await pilot.press("a")
        await pilot.pause()
        figures["accept_and_next_via_pilot_ms"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        await app._save(notify=False)
        figures["save_plan_s"] = time.perf_counter() - t
        figures["groups"] = len(state.plan.groups)
        figures["assets"] = sum(len(g.assets) for g in state.plan.groups)
        await pilot.press("q")
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["load_average_1min"] = load_average()
    return figures


def load_average() -> float:
    """Other work on the machine shows up in every timing: report it with them."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return float(f.read().split()[0])
    except OSError:
        return -1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--from-fake", action="store_true", help="analyze FakeImmich('synthetic:N')")
    ap.add_argument("--pictures", choices=("gradient", "photo"), default="gradient")
    ap.add_argument("--plan", type=Path, help="use (or create) this plan file")
    ap.add_argument("--make-plan", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_plan:
        make_plan(args.make_plan, args.groups, args.from_fake)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        work = Path(tmp)
        plan = args.plan or work / "plan.json"
        if not plan.exists():
            t = time.perf_counter()
            cmd = [sys.executable, __file__, "--make-plan", str(plan), "--groups", str(args.groups)]
            if args.from_fake:
                cmd.append("--from-fake")
            subprocess.run(cmd, check=True)
            print(f"built a plan of {args.groups} groups in {time.perf_counter() - t:.1f} s "
                  f"({plan.stat().st_size / 1e6:.1f} MB) in a child process", file=sys.stderr)
            # measure in a fresh process, so nothing of the build is in memory or warm
            cmd = [sys.executable, __file__, "--plan", str(plan), "--switches", str(args.switches),
                   "--pictures", args.pictures]
            return subprocess.run(cmd, check=False).returncode
        figures = asyncio.run(measure(plan, args.switches, work / "cache", args.pictures))
    goals = {"first_frame_s": 1.5, "switch_p95_ms": 50.0, "peak_rss_mb": 300.0}
    for key, value in figures.items():
        goal = goals.get(key)
        mark = "" if goal is None else (f"  ok (goal ≤ {goal:g})" if value <= goal else f"  OVER (goal ≤ {goal:g})")
        print(f"{key:34} {value:10.1f}{mark}" if isinstance(value, float) else f"{key:34} {value:>10}")
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
