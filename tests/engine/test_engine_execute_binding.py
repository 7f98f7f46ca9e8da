"""Execute checks the plan's server, user and key BEFORE the preview and the confirmation.

Nobody is asked "Back up the losers and move them to the trash?" for a run that is then
refused: a plan of another user (or a key without a needed permission) is refused after the
read-only connect requests only (server version, the key, the user), with nothing of the
preview printed, in a dry run too (exit 2, as every refused plan: DESIGN §2). The review app
offers execute only with a client whose user and server matched the plan at connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from confirm_stub import Asked

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Plan, save_plan
from immich_dupes.cli import main
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, ExecuteRefused, check_binding, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import PermissionMissing

CONNECT = {"GET /api/server/version", "GET /api/api-keys/me", "GET /api/users/me"}
"""The read-only requests of ``ImmichClient.connect``: all a refused run may send."""
PREVIEW_WORDS = ("group(s) to resolve", "backups go to", "dry run:")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeImmich, str, Path, str]]:
    """A fake on a loopback socket, a plan of its first user (every group accepted), and the
    key of a second user, Bob, whose library is a copy of the first."""
    fake = FakeImmich(library="sample")
    _, bob = fake.add_user("Bob", library="sample")
    with FakeServer(fake) as srv:

        async def go() -> Plan:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000) as c:
                return await analyze(c)

        plan = asyncio.run(go())
        plan.groups = [decide.accept(g) for g in plan.groups]
        path = tmp_path_factory.mktemp("binding") / "plan.json"
        save_plan(plan, path)
        yield fake, srv.url, path, bob


def requests_since(fake: FakeImmich, since: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.request_log[since:]]


def cli(url: str, key: str, plan: Path, backup: Path, *extra: str) -> int:
    return main(["-u", url, "-a", key, "execute", "-i", str(plan), "-b", str(backup),
                 "--rate-limit", "1000", *extra])


# --------------------------------------------------------------------------- the command


@pytest.mark.parametrize("extra", [(), ("--yes",), ("--dry-run",)], ids=["asked", "yes", "dry-run"])
def test_a_plan_of_another_user_is_refused_before_the_preview_and_the_question(
    extra: tuple[str, ...], served: tuple[FakeImmich, str, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], asked: Asked,
) -> None:
    fake, url, plan, bob = served
    since = len(fake.request_log)
    capsys.readouterr()
    code = cli(url, bob, plan, tmp_path / "b", *extra)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert asked.questions == []
    assert not any(w in out + err for w in PREVIEW_WORDS), err
    assert err.count("\n") == 1, err
    assert err.startswith("immich-dupes: error: this plan was made for another user")
    assert "the API key belongs to bob@example.com" in err
    assert out == ""
    sent = requests_since(fake, since)
    assert sent, "the user was never asked for"
    assert set(sent) <= CONNECT, sent
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("extra", [(), ("--dry-run",)], ids=["asked", "dry-run"])
def test_a_key_without_a_needed_permission_is_refused_before_the_question(
    extra: tuple[str, ...], served: tuple[FakeImmich, str, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], asked: Asked,
) -> None:
    fake, url, plan, _ = served
    key = fake.add_api_key(fake.user_id, ["user.read", "duplicate.read", "asset.read", "album.read",
                                          "asset.download", "asset.update", "albumAsset.create",
                                          "tag.asset"])  # no asset.delete
    since = len(fake.request_log)
    capsys.readouterr()
    code = cli(url, key, plan, tmp_path / "b", *extra)
    _, err = capsys.readouterr()
    assert code == 3, err
    assert "asset.delete" in err
    assert asked.questions == []
    assert not any(w in err for w in PREVIEW_WORDS), err
    assert set(requests_since(fake, since)) <= CONNECT


def test_the_right_user_sees_the_preview_then_the_question(
    served: tuple[FakeImmich, str, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], asked: Asked,
) -> None:
    """The checks moved, the order stayed: connect, preview, question; "no" changes nothing."""
    fake, url, plan, _ = served
    since = len(fake.request_log)
    capsys.readouterr()
    code = cli(url, fake.api_key, plan, tmp_path / "b")
    _, err = capsys.readouterr()
    assert code == 2  # EXIT_DECLINED: nothing failed, nothing changed
    assert asked.questions == ["Back up the losers and move them to the trash?"]
    assert "group(s) to resolve" in err
    assert "nothing done" in err
    assert set(requests_since(fake, since)) <= CONNECT
    assert not (tmp_path / "b").exists()


def test_a_dry_run_of_a_plan_of_another_server_is_refused_before_any_request(
    served: tuple[FakeImmich, str, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    fake, url, plan, _ = served
    other = Plan.model_validate_json(plan.read_bytes())
    other.server_url = "http://other-immich.example:2283/api"
    path = tmp_path / "other.json"
    save_plan(other, path)
    since = len(fake.request_log)
    capsys.readouterr()
    code = cli(url, fake.api_key, path, tmp_path / "b", "--dry-run")
    out, err = capsys.readouterr()
    assert code == 2
    assert "other-immich.example" in err
    assert not any(w in out + err for w in PREVIEW_WORDS)
    assert requests_since(fake, since) == []


# --------------------------------------------------------------------------- the engine


async def test_check_binding_refuses_another_user_with_read_only_requests(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample")
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                            rate_limit=10_000) as c:
        plan = await analyze(c)
    plan.groups = [decide.accept(g) for g in plan.groups]
    _, bob = fake.add_user("Bob", library="sample")
    options = ExecuteOptions(backup_dir=tmp_path / "b")
    since = len(fake.request_log)
    async with ImmichClient("http://fake-immich", bob, transport=fake.transport(),
                            rate_limit=10_000) as c:
        with pytest.raises(ExecuteRefused, match="another user"):
            await check_binding(c, plan, options)
    assert set(requests_since(fake, since)) <= CONNECT

    # The plan's own user: the answer is kept, and execute does not connect a second time.
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                            rate_limit=10_000) as c:
        info = await check_binding(c, plan, options)
        assert info.user.id == plan.user_id
        since = len(fake.request_log)
        other = plan.model_copy(update={"server_url": "http://elsewhere/api"})
        with pytest.raises(ExecuteRefused, match="made for http://elsewhere"):
            await check_binding(c, other, options)
        assert len(fake.request_log) == since
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b", dry_run=True))
        assert rep.failed == 0
        assert "GET /api/users/me" not in requests_since(fake, since)


async def test_check_binding_names_a_missing_permission(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample")
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                            rate_limit=10_000) as c:
        plan = await analyze(c)
    plan.groups = [decide.accept(g) for g in plan.groups]
    key = fake.add_api_key(fake.user_id, ["user.read", "duplicate.read", "asset.read"])
    async with ImmichClient("http://fake-immich", key, transport=fake.transport(),
                            rate_limit=10_000) as c:
        with pytest.raises(PermissionMissing, match="asset.download"):
            await check_binding(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))


# --------------------------------------------------------------------------- the review app


async def test_the_review_app_never_offers_execute_for_another_users_plan(tmp_path: Path) -> None:
    """The app connects at start and keeps no client for another user's plan: pressing E shows
    why, and no confirmation screen opens."""
    from immich_dupes.tui.app import make_app
    from immich_dupes.tui.screens.confirm import ExecuteConfirmScreen

    fake = FakeImmich(library="sample")
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                            rate_limit=10_000) as c:
        plan = await analyze(c)
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    _, bob = fake.add_user("Bob", library="sample")
    since = len(fake.request_log)

    def client() -> ImmichClient:
        return ImmichClient("http://fake-immich", bob, transport=fake.transport(), rate_limit=1000)

    app = make_app(path, client_factory=client, image_protocol="halfcell",
                   cache_dir=tmp_path / "cache", backup_dir=tmp_path / "backup")
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if app.server_notice:
                break
        assert app.client is None
        assert "another user" in app.server_notice
        await pilot.press("A", "E")
        await pilot.pause()
        assert not any(isinstance(s, ExecuteConfirmScreen) for s in app.screen_stack)
        assert any("another user" in n.message for n in app._notifications)
        await pilot.press("q")
    assert set(requests_since(fake, since)) <= CONNECT
    assert not (tmp_path / "backup").exists()
