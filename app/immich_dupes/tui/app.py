"""The review app and its factory, shared by ``immich-dupes review``, ``demo`` and the tests.

The app holds the services (review state, server client, pictures); the screens show and
decide. The server is optional: without it (``--offline``, unreachable, bad key) the plan is
still reviewed from its own data and a notice says why there are no pictures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget

from immich_dupes.analysis.plan import Plan, load_plan
from immich_dupes.immich.client import ImmichClient, normalize_base_url
from immich_dupes.immich.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ImmichError,
    PermissionMissing,
)
from immich_dupes.tui import images, jobs
from immich_dupes.tui.messages import ServerState
from immich_dupes.tui.screens.confirm import ConfirmScreen, ExecuteConfirmScreen, PathScreen
from immich_dupes.tui.screens.help import HelpScreen
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.screens.preview import PreviewScreen
from immich_dupes.tui.screens.run import Job, RunScreen
from immich_dupes.tui.settings import ImageProtocol, ReviewSettings, check_keymap
from immich_dupes.tui.state import ReviewState
from immich_dupes.tui.thumbs import Pictures, ThumbnailCache, default_cache_dir

ClientFactory = Callable[[], ImmichClient]

IDLE_GC_AFTER = 1.0
"""Seconds without a group being drawn after which the cyclic GC's full collection runs."""
IDLE_GC_MIN_YOUNG = 3
"""...if at least this many middle-generation collections happened since the last one
(~30 group switches: Textual's drawn lines keep each other alive in cycles, so what a switch
leaves behind waits for a full collection)."""

REVIEW_PERMISSIONS = ("asset.view",)
"""What the review itself needs (thumbnails); execute checks its own."""


class ReviewApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "immich-dupes review"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        state: ReviewState,
        settings: ReviewSettings,
        client_factory: ClientFactory | None,
        image_cls: type[Widget] | None,
    ) -> None:
        super().__init__()
        self.state = state
        self.settings = settings
        self.client_factory = client_factory
        self.image_cls = image_cls
        cache_dir = settings.cache_dir if settings.cache_dir is not None else default_cache_dir()
        self.pictures = Pictures(ThumbnailCache(cache_dir, settings.memory_cache_mb * 1024 * 1024))
        self.client: ImmichClient | None = None
        self.server_notice = "Connecting to the server for pictures…"
        self.backup_dir = settings.backup_dir
        self.started = time.perf_counter()
        self.first_frame: float | None = None
        """Seconds from construction to the first screen with the list filled (benchmarks)."""
        self._save_lock = asyncio.Lock()
        self._gc_threshold: tuple[int, int, int] | None = None
        self._last_draw = time.monotonic()
        self._quit_unsaved = False
        self.keymap_warning = ""
        """Set by the caller when the keymap file itself was unusable (see load_keymap)."""
        check = check_keymap(settings.keymap, keymap_scopes())
        self.keys_by_id = check.keys
        """Binding id → its keys as mapped now (help screen)."""
        self.keymap_problems = check.warnings
        """What the keymap breaks or ignores: told at start."""
        if check.keymap:
            self.set_keymap(check.keymap)

    # ------------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    def on_mount(self) -> None:
        self.set_interval(self.settings.autosave_seconds, self.autosave)
        self.set_interval(IDLE_GC_AFTER / 2, self._collect_when_idle)
        self.call_after_refresh(self._mark_first_frame)
        if self.keymap_warning:
            self.notify(self.keymap_warning, title="Keymap", severity="warning")
        if self.keymap_problems:
            self.notify("\n".join(self.keymap_problems), title="keymap.json", severity="warning",
                        timeout=20)
        self.connect_server()

    def _mark_first_frame(self) -> None:
        if self.first_frame is None:
            self.first_frame = time.perf_counter() - self.started
            self.set_timer(0.2, self._freeze_heap)

    def _freeze_heap(self) -> None:
        """Move what startup built (plan, list lines, widgets) out of the cyclic GC's way.

        Without this, a full collection walks ~10^5 long-lived objects every few group
        switches (~80 ms each time on a 10,000-group plan). Collected once first, so no
        startup garbage is kept.
        """
        gc.collect()
        gc.freeze()
        if self._gc_threshold is None:
            self._gc_threshold = gc.get_threshold()
            # full collections far apart: each walks everything built since (render caches)
            gc.set_threshold(max(self._gc_threshold[0], 5000), 20, 100)

    def note_drawing(self) -> None:
        """A group is being drawn: the user is busy, no full collection now."""
        self._last_draw = time.monotonic()

    def _collect_when_idle(self) -> None:
        """The full collection, while the user looks at a group rather than in the middle of
        a key press. Left to CPython's thresholds it comes every ~1,500 switches and then walks
        everything left behind since (~1 s on a 10,000-group plan); here, after a pause, it
        walks what ~30-300 switches left (~0.1-0.3 s nobody waits for), and memory stays flat."""
        if self._gc_threshold is None:  # startup's heap is not frozen yet
            return
        if time.monotonic() - self._last_draw < IDLE_GC_AFTER:
            return
        if gc.get_count()[2] < IDLE_GC_MIN_YOUNG:
            return
        gc.collect()

    async def on_unmount(self) -> None:
        if self.state.dirty and not self._quit_unsaved:
            # the app is going away some other way than q (an error, a signal): keep the work
            with contextlib.suppress(OSError):
                self.state.save()
        if self.client is not None:
            await self.client.aclose()
        if self._gc_threshold is not None:
            # hand the heap back (tests run many apps in one process)
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None
            gc.unfreeze()

    @property
    def main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # ------------------------------------------------------------------ server

    @work(group="server", exclusive=True, exit_on_error=False)
    async def connect_server(self) -> None:
        if self.settings.offline:
            self.post_message(ServerState(False, "Offline (--offline): the server is not contacted, pictures only where cached; everything else works and decisions are saved.", "offline mode"))
            return
        if self.client_factory is None:
            self.post_message(ServerState(False, "No server configured (-u/-a or IMMICH_URL/IMMICH_API_KEY): no pictures.", "no server configured"))
            return
        try:
            client = self.client_factory()
        except (ValueError, RuntimeError) as e:
            self.post_message(ServerState(False, f"Cannot use the server settings ({e}): no pictures.", "bad server settings"))
            return
        try:
            info = await client.connect(REVIEW_PERMISSIONS)
        except AuthenticationFailed as e:
            await client.aclose()
            self.post_message(ServerState(False, f"The server refused the API key ({e.message}): no pictures, no execute. Reviewing from the plan.", "the API key was refused"))
            return
        except PermissionMissing as e:
            await client.aclose()
            self.post_message(ServerState(False, f"{e.message}: no pictures. Reviewing from the plan.", "missing permission"))
            return
        except ImmichError as e:
            await client.aclose()
            kind = "Cannot reach the server" if isinstance(e, ConnectionFailed) else "The server failed"
            self.post_message(ServerState(False, f"{kind} ({e.message}): no pictures, no execute. Reviewing from the plan.", "server unreachable"))
            return
        mismatch = self._plan_mismatch(client.base_url, info.user.id)
        if mismatch:
            await client.aclose()
            self.post_message(ServerState(False, mismatch, "plan is for another server"))
            return
        self.client = client
        self.pictures.client = client
        self.post_message(ServerState(True, ""))

    def _plan_mismatch(self, base_url: str, user_id: str) -> str:
        plan = self.state.plan
        if not _same_server(plan.server_url, base_url):
            return (f"This plan was made on {plan.server_url}, not {base_url}: "
                    "pictures and execute are off.")
        if user_id != plan.user_id:
            return (f"This plan belongs to another user ({plan.user_email or plan.user_id}): "
                    "pictures and execute are off.")
        return ""

    def on_server_state(self, message: ServerState) -> None:
        self.server_notice = message.notice
        if not message.online:
            self.pictures.unavailable = message.reason or "no server"
        main = self.main
        if main is not None:
            main.server_changed()

    # ------------------------------------------------------------------ saving

    async def autosave(self) -> None:
        if self.state.dirty:
            await self._save(notify=False)

    def save_in_background(self, notify: bool = False) -> None:
        self._save_worker(notify)

    @work(group="save", exit_on_error=False)
    async def _save_worker(self, notify: bool) -> None:
        await self._save(notify)

    async def _save(self, notify: bool) -> bool:
        """Snapshot on the event loop, write in a thread; saves never overtake each other."""
        async with self._save_lock:
            snap, version = self.state.snapshot()
            try:
                await asyncio.to_thread(ReviewState.write, snap, self.state.path)
            except OSError as e:
                self.notify(f"Could not save {self.state.path}: {e.strerror or e}", title="Save failed",
                            severity="error", timeout=10)
                return False
            self.state.mark_saved(version)
        main = self.main
        if main is not None:
            main.update_title()
        if notify:
            self.notify(f"Saved {self.state.path.name}")
        return True

    async def action_quit(self) -> None:
        if any(isinstance(s, RunScreen) and not s.finished for s in self.screen_stack):
            self.notify("A run is in progress: press Escape to cancel it safely first.", severity="warning")
            return
        if self.state.dirty and not self._quit_unsaved:
            ok = await self._save(notify=False)
            if not ok:
                self._quit_unsaved = True
                self.notify("Press q again to quit WITHOUT saving.", severity="error", timeout=10)
                return
        self.exit(0)

    # ------------------------------------------------------------------ execute / verify / restore

    def help_extra(self) -> list[str]:
        cache = self.pictures.cache.cache_dir
        return [
            "",
            f"  plan: {self.state.path}",
            f"  server: {self.client.base_url if self.client else self.server_notice or 'not connected'}",
            f"  pictures: {images.describe(self.image_cls)}; cache: {cache}",
            f"  backup directory: {self.backup_dir or 'not set (asked for on execute)'}",
        ]

    def _online_client(self, what: str) -> ImmichClient | None:
        if self.client is None:
            self.notify(f"{what} needs the server. {self.server_notice}", title=what, severity="error", timeout=8)
            return None
        return self.client

    def _with_backup_dir(self, what: str, then: Callable[[Path], None]) -> None:
        if self.backup_dir is not None:
            then(self.backup_dir)
            return

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            self.backup_dir = path
            then(path)

        self.push_screen(
            PathScreen(
                f"{what}: backup directory",
                "Where the copies that get trashed are backed up first (and where restore reads them). "
                "A folder on another disk is best.",
            ),
            chosen,
        )

    def _who(self) -> str:
        plan = self.state.plan
        return plan.user_email or plan.user_id

    def start_execute(self) -> None:
        client = self._online_client("Execute")
        if client is None:
            return
        from immich_dupes.engine import execute  # imported on use: keeps start-up light

        def check(backup: Path) -> None:
            self._check_execute(execute, client, backup)

        self._with_backup_dir("Execute", check)

    @work(group="execute-check", exclusive=True, exit_on_error=False)
    async def _check_execute(self, execute: ModuleType, client: ImmichClient, backup: Path) -> None:
        """The refusals that need the server (user, the key's permissions: the same for both
        modes), read only, before anything is asked; then the confirmation."""
        plan, _ = self.state.snapshot()
        try:
            await execute.check_binding(client, plan, execute.ExecuteOptions(backup_dir=backup, skip_review=True))
        except (ValueError, ImmichError) as e:  # ExecuteRefused, PermissionMissing: say why, send nothing
            self.notify(getattr(e, "message", None) or str(e), title="Execute refused", severity="error",
                        timeout=12)
            return
        self._confirm_execute(execute, client, backup, plan)

    def _confirm_execute(self, execute: ModuleType, client: ImmichClient, backup: Path, plan: Plan) -> None:
        """Preflight (every refusal that needs no server) for the mode shown, the confirmation,
        then the run. A refusal of one mode is said in the dialog (``f`` may switch to the
        other); when both are refused, nothing is asked."""

        def options(force: bool) -> Any:
            return execute.ExecuteOptions(backup_dir=backup, force=force, skip_review=True)

        def describe(force: bool) -> Content:
            pv = execute.preflight(plan, options(force), client.base_url)
            return jobs.describe_execute(pv, client.base_url, self._who())

        screen = ExecuteConfirmScreen(describe)
        if screen.refused:
            try:
                describe(True)
            except ValueError:  # ExecuteRefused in either mode: say why, send nothing
                self.notify(screen.refused, title="Execute refused", severity="error", timeout=12)
                return

        def answered(ok: bool | None) -> None:
            if not ok or screen.refused:
                return
            opts = options(screen.force)
            self.save_in_background()
            how = "PERMANENT delete" if screen.force else "to the trash"
            self.push_screen(RunScreen(Job(
                title=f"Execute ({how}) · backup in {backup}",
                run=lambda report, cancel: execute.execute(client, plan, opts, report, cancel),
                summarize=jobs.summarize_execute,
            )))

        self.push_screen(screen, answered)

    def start_verify(self) -> None:
        client = self._online_client("Verify")
        if client is None:
            return
        from immich_dupes.engine import verify  # imported on use: keeps start-up light
        plan, _ = self.state.snapshot()
        backup = self.backup_dir if self.backup_dir is not None and self.backup_dir.exists() else None
        self.push_screen(RunScreen(Job(
            title="Verify: the server against the plan (read only)",
            run=lambda report, cancel: verify.verify(client, plan, report, backup),
            summarize=jobs.summarize_verify,
            cancel_note="Verify only reads: stopping it changes nothing.",
            hard_cancel=True,
        )))

    def start_restore(self) -> None:
        client = self._online_client("Restore")
        if client is None:
            return
        from immich_dupes.engine import restore  # imported on use: keeps start-up light

        def confirm(backup: Path) -> None:
            try:
                _, count = restore.open_backup(backup)
            except ValueError as e:  # BackupError: missing, foreign or edited backup
                self.notify(str(e), title="Restore refused", severity="error", timeout=12)
                return

            def answered(ok: bool | None) -> None:
                if ok:
                    self.push_screen(RunScreen(Job(
                        title=f"Restore from {backup}",
                        run=lambda report, cancel: restore.restore(client, backup, report, False),
                        summarize=jobs.summarize_restore,
                        cancel_note="Stopping; restore is idempotent: run it again to finish.",
                        hard_cancel=True,
                    )))

            self.push_screen(
                ConfirmScreen(
                    "Restore from the backup?",
                    jobs.describe_restore(backup, client.base_url, count),
                    "Restore",
                ),
                answered,
            )

        self._with_backup_dir("Restore", confirm)


def keymap_scopes() -> dict[str, list[Binding]]:
    """The remappable bindings of each screen (with those it inherits): a key is remapped
    within one screen, where bindings can take it from each other."""
    screens: list[type[Screen[Any]]] = [
        MainScreen, HelpScreen, PreviewScreen, ConfirmScreen, ExecuteConfirmScreen, PathScreen, RunScreen,
    ]
    scopes: dict[str, list[Binding]] = {}
    for screen in screens:
        bindings: list[Binding] = []
        for cls in reversed(screen.__mro__):
            bindings += [b for b in vars(cls).get("BINDINGS", ()) if isinstance(b, Binding)]
        scopes[screen.__name__] = bindings
    return scopes


def read_plan(path: Path) -> Plan:
    """load_plan, then frozen: later collections do not walk its ~10^5 objects on every
    group switch."""
    plan = load_plan(path)
    gc.freeze()
    return plan


def _same_server(a: str, b: str) -> bool:
    try:
        return normalize_base_url(a).rstrip("/").lower() == normalize_base_url(b).rstrip("/").lower()
    except ValueError:
        return False


def make_app(
    plan_path: str | Path,
    client_factory: ClientFactory | None = None,
    image_protocol: ImageProtocol | str = "auto",
    offline: bool = False,
    backup_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    keymap: dict[str, str] | None = None,
    plan: Plan | None = None,
) -> ReviewApp:
    """Load the plan (PlanError if it is unusable), pick the image widget, build the app.

    ``plan`` skips reading ``plan_path`` when the caller already holds the plan (demo, bench).
    """
    path = Path(plan_path)
    settings = ReviewSettings(
        plan_path=path,
        image_protocol=image_protocol,
        offline=offline,
        backup_dir=Path(backup_dir) if backup_dir is not None else None,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        keymap=keymap or {},
    )
    image_cls = images.prepare(settings.image_protocol)
    loaded = plan if plan is not None else read_plan(path)
    state = ReviewState.open(loaded, path)
    return ReviewApp(state, settings, client_factory, image_cls)
