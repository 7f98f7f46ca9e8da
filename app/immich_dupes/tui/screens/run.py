"""Running execute / verify / restore from the app: progress per phase, errors as they come,
a safe cancel, then the result.

The screen knows nothing about what it runs: it gets a :class:`Job` whose ``run`` is the same
engine coroutine the command line calls, given a Reporter (engine Events arrive here as
Textual messages) and the engine's ``cancel`` asyncio.Event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, RichLog, Static

from immich_dupes.engine.events import Event, Reporter
from immich_dupes.tui.format import human_bytes
from immich_dupes.tui.messages import EngineProgress, JobFinished

CANCEL_NOTE = (
    "Cancelling: the step in progress finishes, nothing is left half done. "
    "Run it again later (here or on the command line) and the journal resumes where it stopped."
)


@dataclass
class Job:
    title: str
    run: Callable[[Reporter, asyncio.Event], Awaitable[Any]]
    summarize: Callable[[Any], Content]
    cancel_note: str = CANCEL_NOTE
    on_done: Callable[[Any], None] | None = None
    """Called with the result on success (the app uses it to refresh what it shows)."""
    hard_cancel: bool = False
    """The job takes no cancel event (read-only or idempotent): cancel stops its worker."""


@dataclass
class PhaseState:
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    message: str = ""
    events: int = 0
    """Events without counts (one per batch of groups journaled, say)."""
    groups: int = 0
    """Groups those events named (``data["groups"]``)."""
    completed: bool = False
    """The run finished without an error or a cancel: a step without counts is done."""


def eta_text(state: PhaseState, now: float) -> str:
    """A plain ETA from the phase's own pace: by bytes when known, else by items."""
    elapsed = now - state.started
    frac = 0.0
    if state.bytes_total:
        frac = state.bytes_done / state.bytes_total
    elif state.total:
        frac = state.done / state.total
    if frac >= 1:
        return "done"
    if state.completed:
        return ""  # over: no ETA for what the run left out (skipped groups, say)
    if frac <= 0 or elapsed < 1:
        return "ETA …"
    left = elapsed / frac - elapsed
    if left < 60:
        return f"ETA {left:.0f}s"
    return f"ETA {left / 60:.0f}m{left % 60:02.0f}s"


def phase_line(phase: str, state: PhaseState, now: float) -> str:
    parts = [f"{phase:<12}"]
    if state.total is not None:
        parts.append(f"{state.done}/{state.total}")
    elif state.done:
        parts.append(str(state.done))
    if state.bytes_total or state.bytes_done:
        total = f" of {human_bytes(state.bytes_total)}" if state.bytes_total else ""
        parts.append(f"{human_bytes(state.bytes_done)}{total}")
    counted = bool(state.total or state.bytes_total)
    if not counted and not state.done and state.groups:
        parts.append(f"{state.groups} group" + ("" if state.groups == 1 else "s"))
    eta = eta_text(state, now) if counted else ("done" if state.completed and state.events else "")
    if eta:
        parts.append(eta)
    if state.message:
        parts.append(state.message)
    return "  ".join(parts)


FINISHED = "finished"
"""The engine's last event: its message goes to the status line, not a row."""
OVERALL = "progress"
"""The engine's overall phase (groups finished, bytes): shown first, as 'overall'."""


class PhaseRow(Horizontal):
    def __init__(self, phase: str) -> None:
        super().__init__(classes="phase-row")
        self.phase = phase
        self.title = "overall" if phase == OVERALL else phase
        self.state = PhaseState()
        self.bar = ProgressBar(total=None, show_eta=False, show_percentage=True)
        self.label = Static(phase, classes="phase-label")

    def compose(self) -> ComposeResult:
        yield self.bar
        yield self.label

    def apply(self, ev: Event) -> None:
        """Latest values win (per-batch phases restart their counts); bare events are counted."""
        s = self.state
        if ev.total is None and not ev.done and ev.bytes_total is None and not ev.bytes_done:
            s.events += 1
            groups = ev.data.get("groups")
            if isinstance(groups, list):
                s.groups += len(groups)
        else:
            s.done = ev.done
            s.total = ev.total if ev.total is not None else s.total
            s.bytes_done = ev.bytes_done or s.bytes_done
            s.bytes_total = ev.bytes_total if ev.bytes_total is not None else s.bytes_total
        if ev.message and ev.level == "info":
            s.message = ev.message
        if s.bytes_total:
            self.bar.update(total=s.bytes_total, progress=s.bytes_done)
        elif s.total:
            self.bar.update(total=s.total, progress=s.done)
        elif s.events:
            # a step without counts (its events may be coalesced): reached is all it says
            self.bar.update(total=1, progress=1)
        self.label.update(phase_line(self.title, s, time.monotonic()))

    def finish(self, completed: bool) -> None:
        """The job ended (``completed``: without an error or a cancel): a bar that never had
        a total stops pulsing, and the label says so."""
        if self.bar.total is None:
            self.bar.update(total=1, progress=0)
        self.state.completed = completed
        self.label.update(phase_line(self.title, self.state, time.monotonic()))


class RunScreen(Screen[Any]):
    """Runs one engine job; Escape cancels safely while it runs and closes when it is over."""

    BINDINGS = [
        Binding("escape,c", "cancel", "cancel safely", id="run.cancel"),
        Binding("escape,enter,q", "close", "close", id="run.close"),
    ]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.cancel_event = asyncio.Event()
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.rows: dict[str, PhaseRow] = {}
        self.problems = 0
        self.final_message = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="run"):
            yield Static(Content.styled(self.job.title, "bold"), id="run-title")
            yield Static("starting…", id="run-status")
            yield VerticalScroll(id="run-phases")
            yield VerticalScroll(Static("", id="run-result"), id="run-result-box")
            yield Static("Warnings and errors: none so far", id="run-problems", classes="section-title")
            yield RichLog(id="run-log", wrap=True, markup=False, highlight=False, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#run-result-box").display = False
        self.query_one("#run-log").display = False
        self.set_interval(1.0, self._tick)
        self.start()

    def _tick(self) -> None:
        """Keep ETAs moving between events."""
        now = time.monotonic()
        for row in self.rows.values():
            row.label.update(phase_line(row.title, row.state, now))

    def report(self, ev: Event) -> None:
        """The engine's Reporter: every Event becomes a Textual message."""
        self.post_message(EngineProgress(ev))

    @work(group="engine", exclusive=True, exit_on_error=False)
    async def start(self) -> None:
        try:
            result = await self.job.run(self.report, self.cancel_event)
        except asyncio.CancelledError:
            self.post_message(JobFinished(None, None, True))
            raise
        except Exception as e:  # shown to the user, never swallowed
            self.post_message(JobFinished(None, e, self.cancel_event.is_set()))
            return
        self.post_message(JobFinished(result, None, self.cancel_event.is_set()))

    def on_engine_progress(self, message: EngineProgress) -> None:
        ev = message.event
        if ev.level in ("warning", "error"):
            self.problems += 1
            where = f" [{ev.group_id}]" if ev.group_id else ""
            log = self.query_one("#run-log", RichLog)
            log.display = True
            log.write(f"{ev.level}: {ev.phase}{where}: {ev.message}")
            self.query_one("#run-problems", Static).update(f"Warnings and errors: {self.problems}")
        if ev.phase == FINISHED:
            self.final_message = ev.message
            return
        row = self.rows.get(ev.phase)
        if row is None:
            if ev.level != "info":
                return
            row = PhaseRow(ev.phase)
            self.rows[ev.phase] = row
            box = self.query_one("#run-phases", VerticalScroll)
            if ev.phase == OVERALL and box.children:
                box.mount(row, before=0)
            else:
                box.mount(row)
        row.apply(ev)
        if not self.cancel_event.is_set():
            self.query_one("#run-status", Static).update(f"running: {ev.phase}")

    def on_job_finished(self, message: JobFinished) -> None:
        self.finished = True
        completed = message.error is None and not message.cancelled
        for row in self.rows.values():
            row.finish(completed)
        if not self.problems:
            self.query_one("#run-problems", Static).update("Warnings and errors: none")
        self.result = message.result
        self.error = message.error
        status = self.query_one("#run-status", Static)
        if message.error is not None:
            status.update(
                Content.styled(f"stopped with an error: {message.error}", "bold $error")
            )
        elif message.cancelled:
            status.update(Content.styled(
                "cancelled — run it again later and the journal resumes where it stopped", "bold $warning"
            ))
        else:
            done = f"finished: {self.final_message}" if self.final_message else "finished"
            status.update(Content.styled(done, "bold $success"))
        if message.result is not None:
            box = self.query_one("#run-result-box")
            box.display = True
            self.query_one("#run-result", Static).update(self.job.summarize(message.result))
            if self.job.on_done is not None:
                self.job.on_done(message.result)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return not self.finished
        if action == "close":
            return self.finished
        return True

    def action_cancel(self) -> None:
        if self.finished or self.cancel_event.is_set():
            return
        self.cancel_event.set()
        self.query_one("#run-status", Static).update(Content.styled(self.job.cancel_note, "$warning"))
        if self.job.hard_cancel:
            self.workers.cancel_group(self, "engine")

    def action_close(self) -> None:
        if self.finished:
            self.dismiss(self.result)
