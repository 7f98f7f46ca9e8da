"""The review app against the fake Immich (in-process transport): pictures, cache, preview,
and execute / verify / restore started from the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from immich_dupes.analysis.plan import Plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.fake import FakeImmich
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.app import ReviewApp, make_app
from immich_dupes.tui.screens.confirm import ConfirmScreen, ExecuteConfirmScreen
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.screens.preview import PreviewScreen
from immich_dupes.tui.screens.run import RunScreen
from immich_dupes.tui.thumbs import cache_key
from immich_dupes.tui.widgets.asset_card import CardRow

SIZE = (180, 50)
Settle = Callable[[Pilot[Any]], Awaitable[None]]


class Setup:
    def __init__(self, fake: FakeImmich, plan: Plan, path: Path, tmp: Path) -> None:
        self.fake = fake
        self.plan = plan
        self.path = path
        self.tmp = tmp

    def client(self) -> ImmichClient:
        return ImmichClient("http://fake-immich", self.fake.api_key, transport=self.fake.transport(),
                            rate_limit=1000)

    def app(self, **kw: Any) -> ReviewApp:
        kw.setdefault("backup_dir", self.tmp / "backup")
        return make_app(self.path, client_factory=self.client, image_protocol="halfcell",
                        cache_dir=self.tmp / "cache", **kw)


@pytest.fixture
async def sample(tmp_path: Path) -> Setup:
    fake = FakeImmich(library="sample")
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                            rate_limit=1000) as client:
        plan = await analyze(client)
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    return Setup(fake, plan, path, tmp_path)


async def wait_run(pilot: Pilot[Any]) -> RunScreen:
    for _ in range(400):
        await pilot.pause(0.05)
        screen = pilot.app.screen
        if isinstance(screen, RunScreen) and screen.finished:
            return screen
    raise AssertionError(f"the run did not finish; screen is {pilot.app.screen!r}")


def text_of(screen: RunScreen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_pictures_come_from_the_server_and_are_cached(sample: Setup, settle: Settle) -> None:
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.client is not None
        assert app.server_notice == ""
        main = app.main
        assert main is not None
        g = main.current
        assert g is not None
        cards = main.query_one(CardRow).cards[: len(g.assets)]
        assert all(c.has_picture for c in cards)
        for a in g.assets:
            key = cache_key(a, "thumbnail")
            assert (sample.tmp / "cache" / "thumbnail" / key[:2] / key).is_file()
        # the next groups were prefetched into memory: the next group shows at once
        state = app.state
        upcoming = [state.group_at(p) for p in range(1, min(4, len(state.order)))]
        assert upcoming
        for other in upcoming:
            for a in other.assets:
                assert app.pictures.cached(a, "thumbnail") is not None
        await pilot.press("j")
        await pilot.pause()
        shown = [c for c in main.query_one(CardRow).cards if c.display]
        assert [c.asset_id for c in shown] == [a.id for a in upcoming[0].assets]
        assert all(c.has_picture for c in shown)
        await pilot.press("q")

    # a second session reads the disk cache, even with --offline
    again = sample.app(offline=True)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = again.main
        assert main is not None
        assert "Offline" in again.server_notice
        assert all(c.has_picture for c in main.query_one(CardRow).cards if c.display)
        assert again.pictures.fetched == 0
        await pilot.press("q")


async def test_full_size_preview(sample: Setup, settle: Settle) -> None:
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l", "f")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PreviewScreen)
        assert screen.position == 1
        assert screen._picture is not None
        assert screen._picture.display
        requests = [r.path for r in sample.fake.request_log]
        assert any(p.endswith("/thumbnail") for p in requests)
        assert any("preview" in str(r) for r in sample.fake.request_log)
        await pilot.press("right")
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("q")


async def test_plan_of_another_server_shows_no_pictures(sample: Setup, tmp_path: Path, settle: Settle) -> None:
    other = sample.plan.model_copy(update={"server_url": "https://photos.example.org/api"})
    save_plan(other, sample.path)
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.client is None
        assert "https://photos.example.org" in app.server_notice
        await pilot.press("q")


async def test_execute_verify_restore_from_the_app(sample: Setup, settle: Settle) -> None:
    fake = sample.fake
    safe = [g for g in sample.plan.groups if not g.needs_review]
    losers = [i for g in safe for i in g.losers]
    assert safe
    assert losers
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("A", "E")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ExecuteConfirmScreen)
        body = str(confirm.query_one("#confirm-body").render())
        assert f"{len(safe)} groups resolved" in body
        assert f"{len(losers)} copies" in body
        assert str(sample.tmp / "backup") in body
        assert "moved to the Immich trash" in body
        await pilot.press("f")  # permanent delete is spelled out…
        assert "PERMANENTLY DELETED" in str(confirm.query_one("#confirm-body").render())
        await pilot.press("f")  # …and switched back
        await pilot.press("y")
        run = await wait_run(pilot)
        assert run.error is None
        assert run.result.done == len(safe)
        assert run.result.failed == 0
        assert "Execute finished" in text_of(run, "#run-result")
        assert "overall" in run.rows["progress"].title
        for aid in losers:
            assert fake.asset(aid)["isTrashed"]
        assert (sample.tmp / "backup" / "journal.jsonl").is_file()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)

        fake.run_jobs()
        await pilot.press("V")
        run = await wait_run(pilot)
        assert run.error is None
        assert run.result.groups_ok == len(safe)
        assert not run.result.anomalies
        await pilot.press("escape", "R")
        await pilot.pause()
        await pilot.press("y")
        run = await wait_run(pilot)
        assert run.error is None
        assert run.result.count("from_trash") == len(losers)
        for aid in losers:
            assert not fake.asset(aid)["isTrashed"]
        await pilot.press("escape", "q")


def changes_sent(fake: FakeImmich) -> list[str]:
    """Requests that change something on the server (the review itself only reads)."""
    return [f"{r.method} {r.path}" for r in fake.request_log if r.method in {"POST", "PUT", "DELETE", "PATCH"}]


async def test_enter_on_a_confirmation_never_says_yes(sample: Setup, settle: Settle) -> None:
    """Execute (trash and permanent) and restore: the focus starts on Cancel, Enter cancels,
    nothing is sent; only y executes (checked last, so the test sees an execute when there is one)."""
    fake = sample.fake
    losers = [i for g in sample.plan.groups if not g.needs_review for i in g.losers]
    assert losers
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("A")
        before = changes_sent(fake)
        for keys in (["E"], ["E", "f"]):  # to the trash, then permanent delete
            await pilot.press(*keys)
            await pilot.pause()
            confirm = app.screen
            assert isinstance(confirm, ExecuteConfirmScreen)
            assert confirm.force == (keys == ["E", "f"])
            assert confirm.focused is confirm.query_one("#cancel")
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert isinstance(app.screen, MainScreen)
            assert not any(isinstance(s, RunScreen) for s in app.screen_stack)
        assert changes_sent(fake) == before
        assert not (sample.tmp / "backup" / "journal.jsonl").exists()
        assert not any(fake.asset(aid)["isTrashed"] for aid in losers)

        await pilot.press("E")
        await pilot.pause()
        await pilot.press("y")
        run = await wait_run(pilot)
        assert run.error is None
        assert all(fake.asset(aid)["isTrashed"] for aid in losers)
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("R")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.focused is confirm.query_one("#cancel")
        before = changes_sent(fake)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, MainScreen)
        assert changes_sent(fake) == before
        assert all(fake.asset(aid)["isTrashed"] for aid in losers)
        await pilot.press("q")


async def test_execute_refused_says_why_and_sends_nothing(sample: Setup, settle: Settle) -> None:
    backup = sample.tmp / "not-a-backup"
    backup.mkdir()
    (backup / "holiday.jpg").write_bytes(b"someone else's file")
    app = sample.app(backup_dir=backup)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("A", "E")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any(n.title == "Execute refused" for n in app._notifications)
        await pilot.press("q")
    assert not any(r.method == "DELETE" for r in sample.fake.request_log)


async def test_execute_cancelled_from_the_app(sample: Setup, settle: Settle) -> None:
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("A", "E")
        await pilot.pause()
        sample.fake.faults = "latency=300ms"
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q")  # quitting is refused while a run is in progress
        assert app.is_running
        await pilot.press("escape")
        run = await wait_run(pilot)
        assert run.cancel_event.is_set()
        assert run.error is None
        assert "cancelled" in text_of(run, "#run-status")
        sample.fake.faults = ""
        await pilot.press("escape", "q")
