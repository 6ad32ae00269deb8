"""A golden's lock goes with the golden: `sandkit image rm` (golden.remove) unlinks the
lock of every base key with no golden left, never one that another process holds, and a
waiter that gets the lock of an unlinked file takes the path's new one."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from pathlib import Path

import pytest

from sandkit.fsio import locked
from sandkit.tasks import spawn
from sandkit.vm import golden


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    golden.golden_root().mkdir(parents=True)
    return golden.golden_root()


def make_golden(key: str, image: str = "img1") -> Path:
    folder = golden.golden_root() / key
    folder.mkdir()
    manifest = {"key": key, "shape": "2c1024m", "inputs": {"image": image}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (golden.golden_root() / f"{key.split('-kits-')[0]}.lock").touch()
    return folder


def test_removing_goldens_removes_their_locks(cache: Path) -> None:
    make_golden("aaaa")
    make_golden("aaaa-kits-1234")
    make_golden("bbbb", image="kept")
    (cache / "cccc.lock").touch()  # a golden removed before locks went with them
    assert golden.remove(keep_images={"kept"}) == 2
    assert sorted(p.name for p in cache.iterdir()) == ["bbbb", "bbbb.lock"]


def test_a_lock_another_process_holds_stays(cache: Path) -> None:
    lock = cache / "aaaa.lock"
    with locked(lock):  # another open file: to flock, another holder
        assert golden.remove_locks() == []
    assert lock.exists()
    assert golden.remove_locks() == [lock] and not lock.exists()


def test_a_waiter_on_an_unlinked_lock_takes_the_new_one(cache: Path) -> None:
    lock = cache / "aaaa.lock"

    async def scenario() -> bool:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        entered = asyncio.Event()
        inside: list[bool] = []

        async def waiter() -> None:
            async with golden._locked(lock):
                # the lock it holds is the file at the path: a newcomer would wait for it
                inside.append(lock.exists())
                entered.set()

        task = spawn(waiter(), "waiter")
        await asyncio.sleep(0.1)
        assert not entered.is_set()
        lock.unlink()  # as remove_locks does, while holding it
        os.close(fd)
        await task
        return inside == [True]

    assert asyncio.run(scenario())
