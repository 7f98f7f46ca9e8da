"""The second walkthrough's review-app findings: remapped keys (reach their action, listed as
remapped, warned about at start), filters that split the plan, copies that do not wrap, the
"how" of a keeper's own value, and the help at 100 columns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.binding import Binding
from textual.content import Content
from tui_plans import build_plan

from immich_dupes.analysis import decide
from immich_dupes.analysis.decide import set_action
from immich_dupes.analysis.plan import Action, load_plan
from immich_dupes.tui.app import ReviewApp, keymap_scopes, make_app
from immich_dupes.tui.format import diff_rows
from immich_dupes.tui.screens.help import HelpScreen, HelpText, key_lines
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.screens.preview import PreviewScreen
from immich_dupes.tui.settings import check_keymap
from immich_dupes.tui.state import Filter, ReviewState, Sort, Status, group_status, matches

SIZE = (180, 50)
PlanFile = Callable[[list[str]], Path]


def offline_app(path: Path, tmp_path: Path, keymap: dict[str, str] | None = None) -> ReviewApp:
    return make_app(path, image_protocol="halfcell", offline=True, cache_dir=tmp_path / "cache",
                    keymap=keymap)


def main_of(app: ReviewApp) -> MainScreen:
    screen = app.main
    assert screen is not None
    return screen


def help_rows(app: ReviewApp) -> dict[str, str]:
    assert isinstance(app.screen, HelpScreen)
    return {bid: keys for keys, _, bid in app.screen.rows}


# ---------------------------------------------------------------------- keymap


async def test_readme_keymap_example_enter_accepts_on_the_group_list(
    plan_file: PlanFile, tmp_path: Path
) -> None:
    """The group list (focused) binds Enter itself; the review action still gets it."""
    path = plan_file(["gps", "tz", "safe"])
    app = offline_app(path, tmp_path, {"review.accept": "enter,a", "review.next_group": "j,down"})
    async with app.run_test(size=SIZE) as pilot:
        assert app.keymap_problems == []
        main = main_of(app)
        assert main.focused is not None
        assert main.focused.id == "groups"
        assert main.active_bindings["enter"].binding.id == "review.accept"  # what the footer shows
        first = main.current_index
        await pilot.press("enter")
        assert first is not None
        assert app.state.plan.groups[first].reviewed
        await pilot.press("question_mark")
        await pilot.pause()
        rows = help_rows(app)
        assert rows["review.accept"] == f"{app.get_key_display(Binding('enter', 'x'))}/a"
        assert rows["review.next_group"] == f"j/{app.get_key_display(Binding('down', 'x'))}"
        await pilot.press("escape", "q")
    assert load_plan(path).groups[0].reviewed


async def test_enter_alone_replaces_a_and_stays_listed(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps", "tz"])
    app = offline_app(path, tmp_path, {"review.accept": "enter"})
    async with app.run_test(size=SIZE) as pilot:
        assert app.keymap_problems == []  # accept still has a key: nothing to warn about
        await pilot.press("a")
        assert not app.state.dirty
        await pilot.press("enter")
        assert app.state.plan.groups[0].reviewed
        footer = {ab.binding.id for ab in main_of(app).active_bindings.values() if ab.binding.show}
        assert "review.accept" in footer
        await pilot.press("question_mark")
        await pilot.pause()
        assert help_rows(app)["review.accept"] == app.get_key_display(Binding("enter", "x"))
        await pilot.press("escape", "q")


async def test_a_key_taken_and_an_unknown_id_are_named_at_start(
    plan_file: PlanFile, tmp_path: Path
) -> None:
    path = plan_file(["gps", "tz"])
    app = offline_app(path, tmp_path, {"review.skip": "a", "review.nonexistent": "z"})
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        told = "\n".join(n.message for n in app._notifications if n.title == "keymap.json")
        assert "review.nonexistent" in told
        assert "'a' now does review.skip, no longer review.accept" in told
        assert "review.accept has no key left" in told
        await pilot.press("a")  # skips now
        assert app.state.plan.groups[0].action is Action.SKIP
        await pilot.press("question_mark")
        await pilot.pause()
        rows = help_rows(app)
        assert rows["review.skip"] == "a"
        assert rows["review.accept"] == "(no key)"
        await pilot.press("escape", "q")


def test_check_keymap_follows_textual_and_says_what_it_breaks() -> None:
    scopes = keymap_scopes()
    # run.cancel and run.close share Escape: Textual drops it from both when one is remapped
    check = check_keymap({"run.cancel": "x"}, scopes)
    assert check.keys["run.cancel"] == ("x",)
    assert check.keys["run.close"] == ("enter", "q")
    assert any("'escape' no longer does run.close" in w for w in check.warnings)
    # one key given to two ids of a screen: the first in the file keeps it, the second is told
    check = check_keymap({"review.accept": "z", "review.skip": "z,y"}, scopes)
    assert check.keymap == {"review.accept": "z", "review.skip": "y"}
    assert any("'z' is given to review.accept and to review.skip" in w for w in check.warnings)
    # the same key on two screens is no clash; '?' is Textual's question_mark
    check = check_keymap({"help.close": "escape,?", "review.help": "?"}, scopes)
    assert check.warnings == []
    assert check.keys["review.help"] == ("question_mark",)
    # nothing usable: the binding keeps its keys, and the user hears why
    check = check_keymap({"review.undo": " , "}, scopes)
    assert check.keys["review.undo"] == ("u", "ctrl+z")
    assert "review.undo" not in check.keymap
    assert check.warnings


# ---------------------------------------------------------------------- filters


def test_filters_split_the_plan_and_agree_with_counts_and_n(tmp_path: Path) -> None:
    plan = build_plan(["gps", "safe", "tz", "safe", "external", "gps"])
    plan.groups[1] = decide.accept(plan.groups[1])  # a safe group a person confirmed
    plan.groups[2] = decide.set_action(plan.groups[2], Action.SKIP)
    plan.groups[5] = decide.set_action(plan.groups[5], Action.STACK)
    st = ReviewState.open(plan, tmp_path / "plan.json")
    st.sort = Sort.DATE

    def shown(flt: Filter) -> set[int]:
        st.filter = flt
        return set(st.recompute())

    undecided, decided = shown(Filter.UNDECIDED), shown(Filter.DECIDED)
    todo, everything = shown(Filter.NEEDS_REVIEW), shown(Filter.ALL)
    assert undecided & decided == set()
    assert undecided | decided == everything == set(range(6))
    assert todo <= undecided
    assert undecided == {0, 3, 4}  # 3: safe, nobody confirmed it
    assert decided == {1, 2, 5}
    assert todo == {0, 4}
    assert len(todo) == st.counts()[Status.NEEDS_REVIEW]  # the title's count
    # n walks exactly the to-do list, whatever the filter shows
    st.filter = Filter.ALL
    st.recompute()
    seen: set[int] = set()
    pos = st.next_needing_review(None)
    while pos is not None and st.order[pos] not in seen:
        seen.add(st.order[pos])
        pos = st.next_needing_review(pos)
    assert seen == todo


def test_a_hand_set_action_on_a_flagged_group_still_needs_review(tmp_path: Path) -> None:
    """A plan edited by hand (action set, reviewed not): execute still refuses it as not
    reviewed, so the app lists it as needing review too; once a person decides, it is decided."""
    plan = build_plan(["gps"])
    g = plan.groups[0].model_copy(update={"action": Action.KEEP_ALL})
    assert not g.reviewed
    assert g.needs_review
    assert group_status(g) is Status.NEEDS_REVIEW
    assert matches(g, Filter.NEEDS_REVIEW)
    assert matches(g, Filter.UNDECIDED)
    assert not matches(g, Filter.DECIDED)
    decided = set_action(g, Action.KEEP_ALL)
    assert group_status(decided) is Status.NOT_DUPLICATES
    assert matches(decided, Filter.DECIDED)


# ---------------------------------------------------------------------- copies, how, help


async def test_h_and_l_stop_at_the_first_and_last_copy(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["tz"])  # three copies
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        main = main_of(app)
        await pilot.press("h")
        assert main.asset_pos == 0  # not the last copy
        await pilot.press("l", "l", "l", "l")
        assert main.asset_pos == 2
        await pilot.press("e")  # on #3, which has no description: nothing taken from a wrapped copy
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, PreviewScreen)
        await pilot.press("l")
        assert app.screen.position == 2
        await pilot.press("h", "h", "h")
        assert app.screen.position == 0
        await pilot.press("escape")
        await pilot.pause()
        assert main.asset_pos == 0
        await pilot.press("q")


def test_how_says_keeper_for_the_keepers_own_value() -> None:
    g = build_plan(["gps"]).groups[0]  # #1 Munich keeps, #2 Berlin
    second = g.assets[1].id
    how = {r.key: r.rule for r in diff_rows(g)}
    assert how["gps"] == "keeper"
    taken = decide.set_source(g, "gps", second)
    assert {r.key: r.rule for r in diff_rows(taken)}["gps"] == "from #2"
    # the walkthrough: GPS from #2, then #2 made the keeper: its own value now
    promoted = decide.set_winner(taken, second)
    rows = {r.key: r for r in diff_rows(promoted)}
    assert rows["gps"].source == 1
    assert rows["gps"].rule == "keeper"
    assert rows["description"].rule == "keeper"  # Brandenburg Gate, #2's own


def test_help_keys_fit_100_columns() -> None:
    app_rows = [
        ("?/f1", "this help", "review.help"),
        ("t", "keep the focused asset too / trash it again (partial keep)", "review.toggle_keep"),
        ("e", "take the description from the focused asset (same on the keeper)",
         "review.source_description"),
    ]
    for width in (90, 60, 40):  # (three columns, then the id under the description)
        lines = [c.plain for c in key_lines(app_rows, width)]
        assert all(len(line) <= width for line in lines), width
        assert all(line.startswith("  ") for line in lines), width  # nothing at the margin
        for _, _, bid in app_rows:
            assert any(bid in line for line in lines)
    wide = [c.plain for c in key_lines(app_rows)]
    assert len(wide) == 3
    assert all(bid in line for line, (_, _, bid) in zip(wide, app_rows, strict=True))


async def test_help_screen_at_100_columns(plan_file: PlanFile, tmp_path: Path) -> None:
    app = offline_app(plan_file(["gps"]), tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        text = app.screen.query_one(HelpText)
        width = text.content_region.width
        assert 0 < width < 100
        content = text.content
        assert isinstance(content, Content)
        lines = content.plain.splitlines()
        start = lines.index("Keys") + 1
        keys = lines[start:lines.index("", start)]
        assert any("review.toggle_keep" in line for line in keys)
        assert all(line.startswith("  ") and len(line) <= width for line in keys)
        await pilot.press("escape", "q")
