"""The execute confirmation when execute refuses a mode (a backup folder of the other mode, a
key without a permission): the dialog or a notification says why, the app keeps running,
nothing is sent. And the run screen's rows of steps without counts say when they are done."""

from __future__ import annotations

from pathlib import Path

from test_tui_server import SIZE, Settle, Setup, changes_sent, sample, wait_run
from textual.widgets import Button

from immich_dupes.analysis import decide
from immich_dupes.engine import execute
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.screens.confirm import ExecuteConfirmScreen
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.screens.run import PhaseState, phase_line

__all__ = ["sample"]  # the fixture, shared with test_tui_server


def body(screen: ExecuteConfirmScreen) -> str:
    return str(screen.query_one("#confirm-body").render())


async def test_permanent_delete_refused_on_a_trash_mode_backup_is_said_in_the_dialog(
    sample: Setup, settle: Settle
) -> None:
    """Walkthrough 4, item 4: `f` on a backup folder of a trash-mode run crashed the app."""
    fake = sample.fake
    app = sample.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")  # not duplicates: the run has a dismiss step too
        await pilot.press("A", "E")
        await settle(pilot)
        await pilot.press("y")
        run = await wait_run(pilot)
        assert run.error is None
        assert run.result.done > 0
        # (checked last) every step's row says it is over, those without counts too
        labels = {phase: str(row.label.render()).rstrip() for phase, row in run.rows.items()}
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("E")
        await settle(pilot)
        confirm = app.screen
        assert isinstance(confirm, ExecuteConfirmScreen)
        assert "done by an earlier run" in body(confirm)
        before = changes_sent(fake)
        await pilot.press("f")
        await pilot.pause()
        assert app.is_running
        assert app.screen is confirm
        assert confirm.force
        assert "refuses permanent delete" in body(confirm)
        assert "started in trash mode" in body(confirm)
        assert confirm.query_one("#confirm", Button).disabled
        await pilot.press("y")  # refused: y does nothing
        await pilot.pause(0.2)
        assert app.screen is confirm
        await pilot.press("f")  # back to the trash: allowed again
        await pilot.pause()
        assert not confirm.force
        assert "moved to the Immich trash" in body(confirm)
        assert not confirm.query_one("#confirm", Button).disabled
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert changes_sent(fake) == before
        await pilot.press("q")
    for phase in ("manifest", "dismiss"):
        assert phase in labels, sorted(labels)
        assert labels[phase].endswith("done"), labels[phase]


async def test_a_permanent_delete_backup_opens_the_dialog_refusing_the_trash(
    sample: Setup, tmp_path: Path, settle: Settle
) -> None:
    """The other way round: the trash is refused, `f` switches to the mode that is allowed."""
    fake = sample.fake
    plan = sample.plan.model_copy(
        update={"groups": [decide.accept(g) if not g.needs_review else g for g in sample.plan.groups]}
    )
    backup = tmp_path / "backup"
    async with sample.client() as client:
        rep = await execute.execute(client, plan, execute.ExecuteOptions(backup_dir=backup, force=True,
                                                                        skip_review=True))
    assert rep.done > 0
    app = sample.app(backup_dir=backup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = changes_sent(fake)
        await pilot.press("A", "E")
        await settle(pilot)
        confirm = app.screen
        assert isinstance(confirm, ExecuteConfirmScreen)
        assert not confirm.force
        assert "refuses moving to the trash" in body(confirm)
        assert "--force" in body(confirm)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert app.screen is confirm
        await pilot.press("f")
        await pilot.pause()
        assert "PERMANENTLY DELETED" in body(confirm)
        assert not confirm.query_one("#confirm", Button).disabled
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert changes_sent(fake) == before
        await pilot.press("q")


async def test_a_key_without_delete_permission_is_refused_before_the_dialog(
    sample: Setup, settle: Settle
) -> None:
    """check_binding's refusals (read only) come before anything is asked."""
    fake = sample.fake
    key = fake.add_api_key(fake.user_id, ["asset.view", "asset.read", "user.read", "duplicate.read"])

    def client() -> ImmichClient:
        return ImmichClient("http://fake-immich", key, transport=fake.transport(), rate_limit=1000)

    app = sample.app()
    app.client_factory = client
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert app.client is not None  # the review itself only needs asset.view
        before = changes_sent(fake)
        await pilot.press("A", "E")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        refused = [n for n in app._notifications if n.title == "Execute refused"]
        assert refused
        assert "asset.delete" in refused[0].message
        assert changes_sent(fake) == before
        await pilot.press("q")


def test_a_step_without_counts_says_groups_then_done() -> None:
    state = PhaseState(events=2, groups=3)
    assert phase_line("manifest", state, 0.0).split() == ["manifest", "3", "groups"]
    state.completed = True
    assert phase_line("manifest", state, 0.0).split() == ["manifest", "3", "groups", "done"]
    counted = PhaseState(done=4, total=10, completed=True)
    assert "ETA" not in phase_line("backup", counted, 1e9)
    assert "done" not in phase_line("backup", counted, 1e9)
