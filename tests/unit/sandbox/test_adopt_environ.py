"""An adopter hands its credential variables over with the adoption itself (no second
request): the member's proxy is built with them; a refused adoption keeps none."""

from __future__ import annotations

from pathlib import Path

from sandkit.sandbox import pool as warm_pool
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Store
from sandkit.sandbox.supervisor import egress

from .test_supervisor import config_home, home, member, pool  # noqa: F401 (fixtures, a member)

S = SandboxState


async def test_the_environ_comes_with_the_adoption(home: Path, pool: None) -> None:  # noqa: F811
    box = await member(home)
    assert egress.host_environ(box.supervisor) is None  # its own environment until adopted
    wanted = Config(name="mine", agent="no-such-agent")
    assert await warm_pool.adopt(Store(), wanted, {"SOME_TOKEN": "refused"}) is None
    assert egress.host_environ(box.supervisor) is None  # refused: nothing kept
    assert box.supervisor.runstate is S.POOLED
    adopted = await warm_pool.adopt(Store(), Config(name="mine", agent="shell"), {"T": "v"})
    assert adopted is not None and adopted.state().state is S.RUNNING
    assert egress.host_environ(box.supervisor) == {"T": "v"}
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_an_adoption_does_not_install_the_ca_the_member_pooled_with(
    home: Path,  # noqa: F811
    pool: None,  # noqa: F811
) -> None:
    from sandkit.sandbox.supervisor.guest import GUEST_CA

    box = await member(home)
    files = box.machine.guest.files
    assert files.pop(GUEST_CA) == box.supervisor.ca_pem  # installed when it pooled
    adopted = await warm_pool.adopt(Store(), Config(name="mine", agent="shell"), {})
    assert adopted is not None and adopted.state().state is S.RUNNING
    assert GUEST_CA not in files  # the same certificates: not sent again
    box.supervisor.request_stop()
    assert await box.ended() == 0
