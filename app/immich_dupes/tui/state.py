"""The review session without the UI: the plan, the visible order, edits, undo, saving.

Pure Python (no textual), so the rules the keys follow are plain functions a test can call.
Every edit goes through a function of :mod:`immich_dupes.analysis.decide`; this module only
keeps the history and decides which groups are shown in which order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from immich_dupes.analysis.plan import Action, GroupPlan, Plan, save_plan

UNDO_DEPTH = 500
"""Decisions that can be undone; older ones fall off (each holds only the groups it changed)."""


class Filter(StrEnum):
    """Which groups the list shows. UNDECIDED and DECIDED split the plan in two (a person
    decided a group with a, A, s, x or S, or not yet); NEEDS_REVIEW is the part of UNDECIDED
    the analysis flagged for a person. A safe group nobody confirmed is UNDECIDED (execute
    carries it out as analysed)."""

    NEEDS_REVIEW = "needs review"
    """Flagged for a person and not decided by one yet: the to-do list (``n`` walks it)."""
    UNDECIDED = "undecided"
    """No person decided it yet, flagged or not (● and ○ in the list)."""
    DECIDED = "decided"
    """A person decided it: accepted, skipped, not duplicates or stacked (✓ » ≠ ≡)."""
    ALL = "all"


class Sort(StrEnum):
    CONFLICTS = "conflicts first"
    BYTES = "bytes saved"
    DATE = "date"


class Status(StrEnum):
    NEEDS_REVIEW = "needs review"
    AUTO = "safe, not reviewed"
    REVIEWED = "reviewed"
    SKIPPED = "skipped"
    NOT_DUPLICATES = "not duplicates"
    STACK = "stack"


UNDECIDED_STATUSES = frozenset({Status.NEEDS_REVIEW, Status.AUTO})
"""No person decided these yet (● ○); every other status is a person's decision."""


def group_status(g: GroupPlan) -> Status:
    """The one status each group has: the filters, the title's count, the list's mark and
    ``n`` all follow it, so they cannot disagree."""
    if g.action is Action.SKIP:
        return Status.SKIPPED
    if g.needs_review and not g.reviewed:
        # execute's own test (``execute._unreviewed``): a flagged group with an action set by
        # hand in the plan file, not by a person in the app, is still to be reviewed
        return Status.NEEDS_REVIEW
    if g.action is Action.KEEP_ALL:
        return Status.NOT_DUPLICATES
    if g.action is Action.STACK:
        return Status.STACK
    if g.reviewed:
        return Status.REVIEWED
    return Status.AUTO


def needs_review(g: GroupPlan) -> bool:
    """On the to-do list: flagged by the analysis and no person decided it yet."""
    return group_status(g) is Status.NEEDS_REVIEW


def matches(g: GroupPlan, flt: Filter) -> bool:
    if flt is Filter.NEEDS_REVIEW:
        return needs_review(g)
    if flt is Filter.UNDECIDED:
        return group_status(g) in UNDECIDED_STATUSES
    if flt is Filter.DECIDED:
        return group_status(g) not in UNDECIDED_STATUSES
    return True


def blocking_conflicts(g: GroupPlan) -> int:
    return sum(1 for c in g.conflicts if c.blocking)


def is_safe(g: GroupPlan) -> bool:
    """Needs no review and nobody decided anything else yet: 'accept all safe' takes it."""
    return not g.needs_review and not g.reviewed and g.action is Action.RESOLVE


def capture_date(g: GroupPlan) -> datetime | None:
    return g.winner_asset.captured_at


def _sort_key(sort: Sort, index: int, g: GroupPlan) -> tuple[float | int | str, ...]:
    if sort is Sort.CONFLICTS:
        flagged = 0 if needs_review(g) else 1
        return (flagged, -blocking_conflicts(g), -len(g.review_reasons), index)
    if sort is Sort.BYTES:
        return (-g.bytes_freed, index)
    when = capture_date(g)
    return (0, when.timestamp(), index) if when is not None else (1, 0.0, index)


@dataclass
class UndoEntry:
    label: str
    before: list[tuple[int, GroupPlan]]
    """(index in plan.groups, the group as it was) for every group the edit changed."""


@dataclass
class ReviewState:
    """The plan being reviewed and everything about the session that is not on screen."""

    plan: Plan
    path: Path
    filter: Filter = Filter.ALL
    sort: Sort = Sort.CONFLICTS
    order: list[int] = field(default_factory=list)
    """Indices into ``plan.groups`` shown in the list, in list order."""
    undo_stack: list[UndoEntry] = field(default_factory=list)
    version: int = 0
    """Counts edits (and undos); the file is up to date when it equals ``saved_version``."""
    saved_version: int = 0
    last_saved: float = 0.0
    _index: dict[str, int] = field(default_factory=dict)
    _counts: dict[Status, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {g.duplicate_id: i for i, g in enumerate(self.plan.groups)}
        self._counts = dict.fromkeys(Status, 0)
        for g in self.plan.groups:
            self._counts[group_status(g)] += 1
        if not self.order:
            self.recompute()

    @classmethod
    def open(cls, plan: Plan, path: Path) -> ReviewState:
        """Start on the to-do list when there is one, else on everything."""
        todo = any(needs_review(g) for g in plan.groups)
        return cls(plan=plan, path=path, filter=Filter.NEEDS_REVIEW if todo else Filter.ALL)

    # ------------------------------------------------------------------ order

    def recompute(self) -> list[int]:
        groups = self.plan.groups
        chosen = [i for i, g in enumerate(groups) if matches(g, self.filter)]
        sort = self.sort
        chosen.sort(key=lambda i: _sort_key(sort, i, groups[i]))
        self.order = chosen
        return chosen

    def index_of(self, duplicate_id: str) -> int:
        return self._index[duplicate_id]

    def group_at(self, position: int) -> GroupPlan:
        """The group at ``position`` of the visible list."""
        return self.plan.groups[self.order[position]]

    def position_of(self, index: int) -> int | None:
        try:
            return self.order.index(index)
        except ValueError:
            return None

    def next_needing_review(self, position: int | None) -> int | None:
        """The next visible position after ``position`` whose group still needs review (wraps)."""
        n = len(self.order)
        if n == 0:
            return None
        start = -1 if position is None else position
        groups = self.plan.groups
        for step in range(1, n + 1):
            p = (start + step) % n
            g = groups[self.order[p]]
            if needs_review(g):
                return p
        return None

    # ------------------------------------------------------------------ edits

    def edit(self, index: int, change: Callable[[GroupPlan], GroupPlan], label: str) -> GroupPlan:
        """Apply one decide.py edit to one group, remembering the group as it was."""
        before = self.plan.groups[index]
        after = change(before)
        if after is before:
            return before
        self._push(UndoEntry(label, [(index, before)]))
        self._replace(index, after)
        self.version += 1
        return after

    def edit_many(
        self, indices: Iterable[int], change: Callable[[GroupPlan], GroupPlan], label: str
    ) -> list[int]:
        """The same edit on many groups as one undo step; returns the indices changed."""
        before: list[tuple[int, GroupPlan]] = []
        for i in indices:
            old = self.plan.groups[i]
            new = change(old)
            if new is not old:
                before.append((i, old))
                self._replace(i, new)
        if before:
            self._push(UndoEntry(label, before))
            self.version += 1
        return [i for i, _ in before]

    def _push(self, entry: UndoEntry) -> None:
        self.undo_stack.append(entry)
        if len(self.undo_stack) > UNDO_DEPTH:
            del self.undo_stack[0]

    def undo(self) -> UndoEntry | None:
        if not self.undo_stack:
            return None
        entry = self.undo_stack.pop()
        for index, group in entry.before:
            self._replace(index, group)
        self.version += 1
        return entry

    def _replace(self, index: int, group: GroupPlan) -> None:
        self._counts[group_status(self.plan.groups[index])] -= 1
        self._counts[group_status(group)] += 1
        self.plan.groups[index] = group

    # ------------------------------------------------------------------ counts and saving

    def counts(self) -> dict[Status, int]:
        """Groups per status, kept up to date by the edits (no walk over 10,000 groups)."""
        return dict(self._counts)

    @property
    def dirty(self) -> bool:
        return self.version != self.saved_version

    def snapshot(self) -> tuple[Plan, int]:
        """A copy later edits do not touch (groups are replaced, never changed in place)."""
        return self.plan.model_copy(update={"groups": list(self.plan.groups)}), self.version

    @staticmethod
    def write(snapshot: Plan, path: Path) -> None:
        """Write atomically (temp file + fsync + rename); safe to call from a thread."""
        save_plan(snapshot, path)

    def mark_saved(self, version: int) -> None:
        self.saved_version = max(self.saved_version, version)
        self.last_saved = time.monotonic()

    def save(self) -> None:
        """Save now, on the calling thread."""
        snap, version = self.snapshot()
        self.write(snap, self.path)
        self.mark_saved(version)
