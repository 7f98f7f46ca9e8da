"""``GroupPlan.bytes_freed`` counts what execute removes as the plan stands: a group whose loser
is an external-library copy is left alone until a person allows it (walkthrough 4b: the header
said "frees 43.8 KB" and analyze "1.1 MB would be freed" for such a group)."""

from __future__ import annotations

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, PlanAsset, PlanSettings

EXT = "00000000-0000-4000-8000-0000000000ee"


def asset(n: int, size: int, library_id: str | None = None) -> PlanAsset:
    return PlanAsset(
        id=f"00000000-0000-4000-8000-{n:012d}", file_name=f"IMG_{n}.jpg", width=100 * n,
        height=100 * n, file_size=size, checksum=f"c{n}", library_id=library_id,
    )


def test_an_external_loser_frees_nothing_until_allowed() -> None:
    g = decide.build_group("00000000-0000-4000-9000-000000000001",
                           [asset(3, 9_000), asset(2, 5_000), asset(1, 3_000, library_id=EXT)],
                           PlanSettings())
    assert decide.held_for_external(g)
    assert g.bytes_freed == 0
    allowed = decide.allow_external_delete(g, True)
    assert not decide.held_for_external(allowed)
    assert allowed.bytes_freed == 8_000
    again = decide.allow_external_delete(allowed, False)
    assert again.bytes_freed == 0
    # Keeping the external copy in review (it is no loser then) frees the others.
    kept = decide.set_winner(g, g.assets[2].id)
    assert kept.bytes_freed == 14_000


def test_an_external_keeper_with_uploaded_losers_frees_them() -> None:
    g = decide.build_group("00000000-0000-4000-9000-000000000002",
                           [asset(3, 9_000, library_id=EXT), asset(2, 5_000)], PlanSettings())
    assert g.winner == asset(3, 0).id
    assert not decide.held_for_external(g)
    assert g.bytes_freed == 5_000
    assert decide.set_action(g, Action.STACK).bytes_freed == 0
