"""Approvals cannot widen a sandbox past what a person meant (issue 14, item 7).

- A remembered approval is one exact host: a wildcard that arrives in a request (`CONNECT
  **:443`) raises no question, and no way of remembering stores it.
- An approval never switches the SSRF guard off: only a kit rule or a `--resolve` pin, both
  written by the user, may lead a name to an internal address.
- "Add to kit" writes one quoted scalar the kit reads back as that host, and nothing for a
  value that is not a host name (`x.com,'**'` must not become a second rule `**`).

Pure units for the rules and the YAML edit; the real proxy on loopback for the rest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from lsprotocol import types

from sandkit.errors import SandkitError
from sandkit.kits.loader import load_text
from sandkit.lsp.kitdocs import actions
from sandkit.lsp.kitdocs.edits import add_allowed_host, apply
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.approvals import Approval, ApprovalBroker
from sandkit.net.policy import Policy, Reason
from sandkit.sandbox.store import Config, Store
from sandkit.sandbox.supervisor import Supervisor
from tests.integration.conftest import Origins, one_off_proxy
from tests.integration.conftest import origins as origins  # a fixture
from tests.integration.conftest import trust_ca as trust_ca  # a fixture
from tests.integration.test_proxy import curl

WIDER_THAN_ONE_HOST = ["**", "**:443", "*.x.test", "**.x.test", "10.0.0.0/8", "a.test:1-65535"]


# -- what may be remembered -------------------------------------------------------------
@pytest.mark.parametrize("pattern", WIDER_THAN_ONE_HOST)
def test_the_policy_remembers_no_wildcard(pattern: str) -> None:
    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    with pytest.raises(ValueError, match=r"wildcard|one host|range"):
        policy.with_approval(pattern, Action.ALLOW)


def test_a_remembered_approval_is_the_host_itself() -> None:
    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    for written in ("API.Example.test.", "b.test:8443", "203.0.113.7", "[2001:db8::1]:443"):
        policy = policy.with_approval(written, Action.ALLOW)
    assert set(policy.approvals) == {
        "api.example.test",
        "b.test:8443",
        "203.0.113.7",
        "[2001:db8::1]:443",
    }
    assert policy.decide("api.example.test", 443).reason is Reason.APPROVED
    assert policy.decide("x.api.example.test", 443).action is Action.DENY  # not below it
    assert policy.decide("b.test", 443).action is Action.DENY  # nor on another port


def test_an_approval_is_never_explicit_enough_for_an_internal_address() -> None:
    """The SSRF guard lets a verdict through to an internal address only when its rule
    names the host and a person wrote it in a kit."""
    approved = Policy([], [], DefaultPolicy.DENY_ALL).with_approval("localhost", Action.ALLOW)
    verdict = approved.decide("localhost", 80)
    assert verdict.action is Action.ALLOW and not verdict.explicit


def _supervisor(tmp_path: Path) -> Supervisor:
    store = Store(tmp_path / "sandboxes")
    config = Config(name="box", agent="shell")
    sandbox = store.new(config)
    sandbox.save_config(config)
    return Supervisor(sandbox)


@pytest.mark.parametrize("pattern", [p for p in WIDER_THAN_ONE_HOST if "/" not in p])
def test_the_supervisor_refuses_to_remember_more_than_one_host(
    tmp_path: Path, pattern: str
) -> None:
    """What `sandkit policy approve`, the terminal's [a] and the editor's "Allow for this
    sandbox" send: refused with a message, and nothing stored."""
    supervisor = _supervisor(tmp_path)
    with pytest.raises(SandkitError, match=r"wildcard|one host|range"):
        supervisor.answer(pattern, Action.ALLOW, remember=True)
    assert not (supervisor.sandbox.dir / "approvals.json").exists()
    assert supervisor.load_approvals() == {}


def test_wildcards_remembered_by_an_older_sandkit_are_dropped(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    stored = {"**": "allow", "*.x.test": "allow", "**:443": "allow", "ok.test": "allow"}
    (supervisor.sandbox.dir / "approvals.json").write_text(json.dumps(stored))
    assert supervisor.load_approvals() == {"ok.test": "allow"}


# -- the real proxy -----------------------------------------------------------------------
async def _raw_connect(url: str, target: str) -> bytes:
    """A CONNECT curl will not send (its target is not a host name); the proxy's answer."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read(65536)
    writer.close()
    return answer


@pytest.mark.parametrize("target", ["**:443", "*.x.test:443", "**.x.test:443"])
async def test_a_wildcard_request_raises_no_question(tmp_path: Path, target: str) -> None:
    """`CONNECT **:443` once asked "allow for this sandbox?" about `**`; a person pressing
    [a] allowed every host. Now it is denied at once, with nobody asked."""
    broker = ApprovalBroker()
    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    with broker.watch() as questions:
        async with one_off_proxy(policy, tmp_path, ask=broker.ask, ask_timeout=30) as url:
            # the old proxy held the request until the time-out, then denied it: wait longer
            answer = await asyncio.wait_for(_raw_connect(url, target), 60)
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
        assert questions.empty() and broker.held == {}


async def test_an_approved_host_never_reaches_an_internal_address(
    origins: Origins,  # the fixture imported above
    tmp_path: Path,
) -> None:
    """An agent gets its host approved, then points the name at 127.0.0.1 (here the name is
    `localhost`, which resolves there): still refused, approved once or remembered."""
    target = f"http://localhost:{origins.http_port}/secret-admin"

    async def remember(host: str, port: int) -> Approval:
        return Approval(Action.ALLOW, remember=True)  # "allow for this sandbox"

    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    async with one_off_proxy(policy, tmp_path / "asked", ask=remember) as url:
        for _ in range(2):  # the first request is asked about; the second is remembered
            _, out, _ = await curl("-i", "-x", url, target)
            assert "X-Sandkit-Blocked: private-address" in out, out
            assert "secret-admin" not in out.split("\r\n\r\n", 1)[-1]
    remembered = policy.with_approval("localhost", Action.ALLOW)
    async with one_off_proxy(remembered, tmp_path / "stored") as url:
        _, out, _ = await curl("-i", "-x", url, target)
        assert "X-Sandkit-Blocked: private-address" in out, out
    # A pin the user wrote (--resolve) is what may lead a name inside.
    async with one_off_proxy(remembered, tmp_path / "pinned", {"localhost": "127.0.0.1"}) as url:
        code, out, err = await curl("-x", url, target)
        assert code == 0 and '"path": "/secret-admin"' in out, err


# -- "Add to kit" ---------------------------------------------------------------------------
HEAD = 'schemaVersion: "2"\nkind: mixin\nname: x\n'
FLOW = HEAD + "permissions:\n  network:\n    allow: [a.com]  # ours\n"
BLOCK = HEAD + "permissions:\n  network:\n    allow:\n      - a.com  # ours\n"
NOT_A_HOST = [
    "x.com,'**'",  # became a second rule `**` in a flow list
    "x.com, '**'",
    "x.com\n      - '**'",  # a second item in a block list
    "x.com]\n    deny: [a.com",
    "x.com  # c",
    "**",
    "**:443",
    "*.x.com",
    "x.com:443",
    "[x.com]",
    "{x: y}",
    "'x.com'",
    "",
]


@pytest.mark.parametrize("text", [FLOW, BLOCK], ids=["flow", "block"])
@pytest.mark.parametrize("value", NOT_A_HOST)
def test_add_to_kit_refuses_what_is_not_a_host_name(text: str, value: str) -> None:
    assert add_allowed_host(text, value) is None


def test_no_code_action_offers_to_allow_what_is_not_a_host_name() -> None:
    uri = "file:///kits/x/spec.yaml"
    diagnostic = types.Diagnostic(
        range=types.Range(types.Position(0, 0), types.Position(0, 0)),
        message="blocked",
        code="blocked-host",
        data={"host": "x.com,'**'"},
    )
    assert [a.title for a in actions(uri, FLOW, [diagnostic], None)] == []
    diagnostic.data = {"host": "ok.example.com"}
    assert [a.title for a in actions(uri, FLOW, [diagnostic], None)] == [
        "Allow ok.example.com in this kit"
    ]


@pytest.mark.parametrize("text", [FLOW, BLOCK], ids=["flow", "block"])
@pytest.mark.parametrize("host", ["null", "true", "1.5", "123", "0x1f", "1e3"])
def test_add_to_kit_quotes_what_yaml_would_read_as_something_else(text: str, host: str) -> None:
    """Host names that YAML reads as null, a boolean or a number are written quoted, and
    the kit reads each back as that very host; the rest of the kit is as it was."""
    insert = add_allowed_host(text, host)
    assert insert is not None
    out = apply(text, insert)
    assert f"'{host}'" in out
    assert out.count("# ours") == 1 and out.startswith(HEAD)
    patterns = [r.pattern for r in load_text(out, "k/spec.yaml").kit.network.allow]
    assert patterns == ["a.com", host]


async def test_a_question_is_withdrawn_at_once_when_its_asker_leaves(tmp_path: Path) -> None:
    """`curl -m 3` gives up on a held request: the question must go then, not at the
    time-out, and say why; a person answering later approves nothing."""
    broker = ApprovalBroker()
    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    with broker.watch() as questions:
        async with one_off_proxy(policy, tmp_path, ask=broker.ask, ask_timeout=300) as url:
            port = int(url.rsplit(":", 1)[1])
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT asked.test:443 HTTP/1.1\r\nHost: asked.test:443\r\n\r\n")
            await writer.drain()
            asked = await asyncio.wait_for(questions.get(), 10)
            assert (asked["event"], asked["host"]) == ("approval", "asked.test")
            writer.close()  # the client gives up
            done = await asyncio.wait_for(questions.get(), 10)  # far below the 300 s
            assert done == {
                "event": "approval-done",
                "id": asked["id"],
                "host": "asked.test",
                "action": "abandoned",
            }
            assert broker.held == {}
            assert broker.answer(Action.ALLOW, host="asked.test") == []


async def test_one_asker_leaving_keeps_the_question_for_the_others(tmp_path: Path) -> None:
    broker = ApprovalBroker()
    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    with broker.watch() as questions:
        async with one_off_proxy(policy, tmp_path, ask=broker.ask, ask_timeout=300) as url:
            port = int(url.rsplit(":", 1)[1])
            request = b"CONNECT two.test:443 HTTP/1.1\r\nHost: two.test:443\r\n\r\n"
            _first_reader, first = await asyncio.open_connection("127.0.0.1", port)
            second_r, second = await asyncio.open_connection("127.0.0.1", port)
            for w in (first, second):
                w.write(request)
                await w.drain()
            asked = await asyncio.wait_for(questions.get(), 10)
            await asyncio.sleep(0.5)  # both requests wait on the one question
            first.close()
            await asyncio.sleep(1.0)  # more than the proxy's look at its clients (0.2 s)
            assert questions.empty() and list(broker.held) == [asked["id"]]
            assert [h.host for h in broker.answer(Action.DENY, host="two.test")] == ["two.test"]
            answer = await asyncio.wait_for(second_r.read(65536), 10)
            assert answer.startswith(b"HTTP/1.1 403 ")
            second.close()
