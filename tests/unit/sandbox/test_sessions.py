"""The pure part of sessions: scrollback bounds, attach/detach, window size, the table."""

from __future__ import annotations

import pytest

from sandkit.sandbox.sessions import (
    CLIENT_BACKLOG,
    Attachment,
    Scrollback,
    Session,
    SessionError,
    SessionTable,
)


def session(name: str = "agent") -> Session:
    return Session(name=name, argv=["sh"], user="agent", pty=True)


def test_scrollback_keeps_the_most_recent_bytes_exactly() -> None:
    back = Scrollback(limit=10)
    back.write("stdout", b"0123456")
    back.write("stderr", b"789abc")
    assert back.data() == b"3456789abc"
    assert back.size == 10 and back.total == 13
    assert back.chunks() == [("stdout", b"3456"), ("stderr", b"789abc")]


def test_scrollback_takes_the_tail_of_a_chunk_larger_than_itself() -> None:
    back = Scrollback(limit=4)
    back.write("stdout", b"abcdefgh")
    assert back.data() == b"efgh" and back.size == 4 and back.total == 4


def test_scrollback_at_exactly_the_limit_drops_nothing() -> None:
    back = Scrollback(limit=6)
    back.write("stdout", b"abc")
    back.write("stdout", b"def")
    assert back.data() == b"abcdef"


async def test_output_reaches_every_attached_client_and_the_scrollback() -> None:
    s = session()
    one, two = s.attach(24, 80), s.attach(30, 100)
    s.output("stdout", b"hello")
    assert one.queue.get_nowait() == ("stdout", b"hello")
    assert two.queue.get_nowait() == ("stdout", b"hello")
    assert s.scrollback.data() == b"hello"


async def test_a_client_that_falls_behind_is_detached_not_waited_for() -> None:
    s = session()
    slow, fast = s.attach(24, 80), s.attach(24, 80)
    chunk = b"x" * (CLIENT_BACKLOG // 2)
    s.output("stdout", chunk)
    s.output("stdout", chunk)
    for _ in range(2):
        item = fast.queue.get_nowait()
        assert item is not None
        fast.taken(item[1])
    s.output("stdout", b"more")
    assert slow.dropped and slow not in s.attached
    assert fast in s.attached and fast.queue.get_nowait() == ("stdout", b"more")
    # what it had stays; then the end marker
    assert [slow.queue.get_nowait() for _ in range(3)] == [("stdout", chunk)] * 2 + [None]


async def test_backlog_counts_down_as_the_client_takes_output() -> None:
    a = Attachment()
    assert a.offer("stdout", b"x" * CLIENT_BACKLOG)
    a.taken(b"x" * CLIENT_BACKLOG)
    assert a.backlog == 0 and a.offer("stdout", b"y")


async def test_the_most_recent_client_sets_the_size_after_a_detach() -> None:
    s = session()
    first, second, third = s.attach(10, 40), s.attach(20, 60), s.attach(30, 90)
    assert s.detach(third) == (20, 60)
    assert s.detach(first) == (20, 60)
    assert s.detach(second) is None
    assert third.queue.get_nowait() is None  # told to go


async def test_exit_keeps_the_status_and_ends_attached_clients() -> None:
    s = session()
    a = s.attach(24, 80)
    before = s.describe()
    assert before["running"] is True and before["exit_status"] is None
    s.exited(None, 15)
    assert a.queue.get_nowait() is None and s.attached == []
    described = s.describe()
    assert described["exit_status"] == 143 and described["running"] is False


def test_the_exit_code_is_the_status_when_there_is_one() -> None:
    s = session()
    s.exited(3, None)
    assert s.exit_status == 3


def test_table_refuses_a_running_name_and_reuses_an_ended_one() -> None:
    table = SessionTable()
    first = table.add(session("agent"))
    with pytest.raises(SessionError, match="already running"):
        table.add(session("agent"))
    first.exited(0, None)
    second = table.add(session("agent"))
    assert table.get("agent") is second


@pytest.mark.parametrize("bad", ["", "-x", "A", "a b", "x" * 41, "../x"])
def test_table_refuses_malformed_names(bad: str) -> None:
    with pytest.raises(SessionError, match="session name"):
        SessionTable().add(session(bad))


def test_unknown_session_names_the_known_ones() -> None:
    table = SessionTable()
    table.add(session("agent"))
    with pytest.raises(SessionError, match=r"no session 'x' \(sessions: agent\)"):
        table.get("x")


def test_generated_names_skip_taken_ones() -> None:
    table = SessionTable()
    table.add(session("1"))
    assert table.new_name() == "2"


def test_ended_sessions_are_forgotten_oldest_first_past_the_limit() -> None:
    table = SessionTable()
    for i in range(SessionTable.KEEP_ENDED + 3):
        s = table.add(session(f"s{i}"))
        s.exited(0, None)
        s.ended = float(i)
    live = table.add(session("live"))
    names = [s.name for s in table.all()]
    assert "s0" not in names and "s1" not in names and "s2" not in names
    assert f"s{SessionTable.KEEP_ENDED + 2}" in names and live in table.running()
    assert len([s for s in table.all() if not s.running]) == SessionTable.KEEP_ENDED
