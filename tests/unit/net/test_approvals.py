"""The approval broker: questions reach watchers, answers reach the waiting requests."""

from __future__ import annotations

import asyncio

import pytest

from sandkit.net.actions import Action
from sandkit.net.approvals import Approval, ApprovalBroker, host_with_port


async def test_nobody_watching_means_no_question() -> None:
    broker = ApprovalBroker()
    assert await broker.ask("a.test", 443) is None
    assert broker.held == {}


async def test_a_watcher_sees_the_question_and_its_answer() -> None:
    broker = ApprovalBroker()
    with broker.watch() as events:
        waiting = asyncio.ensure_future(broker.ask("a.test", 443))
        event = await asyncio.wait_for(events.get(), 1)
        assert event["event"] == "approval" and (event["host"], event["port"]) == ("a.test", 443)
        assert [h.host for h in broker.answer(Action.ALLOW, host="A.TEST")] == ["a.test"]
        assert await waiting == Approval(Action.ALLOW)
        done = await asyncio.wait_for(events.get(), 1)
        assert done == {
            "event": "approval-done",
            "id": event["id"],
            "host": "a.test",
            "action": "allow",
        }
    assert broker.held == {}


async def test_requests_to_one_host_share_one_question() -> None:
    broker = ApprovalBroker()
    with broker.watch() as events:
        first = asyncio.ensure_future(broker.ask("a.test", 443))
        second = asyncio.ensure_future(broker.ask("a.test", 443))
        other = asyncio.ensure_future(broker.ask("a.test", 8443))
        await asyncio.sleep(0)
        assert events.qsize() == 2  # :443 once, :8443 once
        broker.answer(Action.DENY, host="a.test:443")
        assert await first == await second == Approval(Action.DENY)
        assert not other.done()
        broker.answer(Action.ALLOW, id=next(iter(broker.held)))
        assert await other == Approval(Action.ALLOW)


async def test_a_timeout_drops_the_question_and_tells_watchers() -> None:
    broker = ApprovalBroker()
    with broker.watch() as events:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(broker.ask("slow.test", 443), 0.05)
        assert broker.held == {}
        asked, dropped = events.get_nowait(), events.get_nowait()
        assert asked["event"] == "approval"
        assert dropped["event"] == "approval-done" and dropped["action"] == "timeout"
        assert broker.answer(Action.ALLOW, host="slow.test") == []  # too late: nothing held


async def test_a_new_watcher_gets_the_open_questions() -> None:
    broker = ApprovalBroker()
    with broker.watch():
        waiting = asyncio.ensure_future(broker.ask("a.test", 443))
        await asyncio.sleep(0)
        with broker.watch() as late:
            assert late.get_nowait()["host"] == "a.test"
        broker.answer(Action.DENY, host="a.test")
        assert await waiting == Approval(Action.DENY)


async def test_answers_match_the_host_exactly() -> None:
    broker = ApprovalBroker()
    with broker.watch():
        waiting = asyncio.ensure_future(broker.ask("api.a.test", 443))
        await asyncio.sleep(0)
        assert broker.answer(Action.ALLOW, host="a.test") == []
        assert broker.answer(Action.ALLOW, host="api.a.test:80") == []
        assert len(broker.answer(Action.ALLOW, host="api.a.test:443")) == 1
        assert await waiting == Approval(Action.ALLOW)


async def test_ipv6_hosts_are_answered_by_address_and_port() -> None:
    broker = ApprovalBroker()
    with broker.watch():
        waiting = asyncio.ensure_future(broker.ask("::1", 8443))
        await asyncio.sleep(0)
        assert broker.answer(Action.ALLOW, host=host_with_port("::1", 443)) == []
        assert len(broker.answer(Action.ALLOW, host="::1")) == 1  # a bare address: any port
        assert await waiting == Approval(Action.ALLOW)
        again = asyncio.ensure_future(broker.ask("::1", 8443))
        await asyncio.sleep(0)
        assert host_with_port("::1", 8443) == "[::1]:8443"
        assert len(broker.answer(Action.DENY, host="[::1]:8443")) == 1
        assert await again == Approval(Action.DENY)
