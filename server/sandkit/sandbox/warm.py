"""A warm start's adoption request, sent before `run` imports asyncio, pydantic and the
client (~90 ms): those imports then overlap the member's adoption (~150 ms) instead of
preceding it. Light on purpose (a blocking socket, JSON lines; tests/unit/sandbox/
test_warm.py holds it): which members a config may adopt, and the request. The reply is
read, and every outcome handled, by ``pool.adopt`` (``sent=``), as for any claim."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sandkit.pids import alive
from sandkit.rpc import ConnectionLost, LineSocket
from sandkit.sandbox.lifecycle import POOL_PREFIX
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Sandbox, SandboxError, State, Store, profile
from sandkit.sandbox.wire import PROTOCOL, SupervisorError, error_of

if TYPE_CHECKING:
    import asyncio

S = SandboxState
ADOPT_ID = 1


def sandkit_version() -> str:
    """The installed distribution's version (what pip installed), else the package's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sandkit")
    except PackageNotFoundError:
        import sandkit

        return sandkit.__version__


def local_identity() -> dict[str, Any]:
    """protocol.Identity.local(), as JSON."""
    return {
        "sandkit": sandkit_version(),
        "protocol": PROTOCOL,
        "executable": sys.executable,
        "prefix": sys.prefix,
    }


def same_kind(state: State, mine: dict[str, Any]) -> bool:
    """Whether the supervisor that wrote ``state`` runs this sandkit (PROTOCOL 1 did not
    say: never)."""
    theirs = (state.sandkit, state.protocol, state.prefix)
    return None not in theirs and theirs == (mine["sandkit"], mine["protocol"], mine["prefix"])


def pool_size() -> int:
    """Members kept ready per machine shape: $SANDKIT_POOL_SIZE (default 1; 0 turns the
    pool off)."""
    try:
        return max(int(os.environ.get("SANDKIT_POOL_SIZE", "1")), 0)
    except ValueError:
        raise SandboxError(
            "SANDKIT_POOL_SIZE must be a whole number (0 turns the pool off)"
        ) from None


def shape(cpus: int, memory_mib: int) -> str:
    return f"{cpus}c{memory_mib}m"


def pool_members(store: Store) -> list[Sandbox]:
    return [s for s in store.all() if s.name.startswith(POOL_PREFIX)]


def candidates(store: Store, config: Config) -> list[Sandbox]:
    """Members of the config's shape: prepared for its agent and kits first, then plain."""
    wanted = shape(config.cpus, config.memory_mib)
    # Plain members boot the base image (one would refuse a sandbox that needs Docker);
    # a member prepared for the same kits boots the variant those kits need.
    plain_will_do = not needs_docker(config)
    found = []
    for member in pool_members(store):
        try:
            member_config = member.config()
        except SandboxError:
            continue
        if member_config.pool_shape != wanted:
            continue
        if not member_config.pool_prepared:
            if plain_will_do:
                found.append((1, member))
        elif profile(member_config) == profile(config):
            found.append((0, member))
    return [member for _, member in sorted(found, key=lambda c: c[0])]


def needs_docker(config: Config) -> bool:
    """What this client knows without resolving: the docker kit named, or an agent image
    of Docker's variant in what build() learned. A member still checks the resolved kits."""
    from sandkit.kits.images import DOCKER_KIT, ImageKind, classify
    from sandkit.sandbox.request import summary_of

    summary = summary_of(config)
    image = summary.image if summary is not None else None
    return DOCKER_KIT in config.kits or classify(image).kind is ImageKind.BASE_DOCKER


def known_environ(config: Config) -> dict[str, str] | None:
    """The host variables the kits' credentials name, from what build() learned in this
    process; None when it learned nothing (pool.credential_environ resolves the kits)."""
    from sandkit.sandbox.request import summary_of

    summary = summary_of(config)
    if summary is None:
        return None
    return {name: os.environ[name] for name in sorted(summary.env_names) if name in os.environ}


@dataclass
class Claim:
    """An adoption request on its way: the member it went to, and the connection its
    answer comes back on."""

    member: Sandbox
    line: LineSocket

    async def answer(self) -> None:
        """Wait for the answer, in the event loop (so that Ctrl-C still ends the wait):
        None once adopted; SupervisorError for an error reply; ConnectionLost when the
        member's supervisor went away."""
        import asyncio

        loop, fd = asyncio.get_running_loop(), self.line.fileno()
        self.line.sock.setblocking(False)
        try:
            while True:
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _wake, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                for message in self.line.receive():
                    if message.get("id") != ADOPT_ID:
                        continue  # an event: none belongs to this request
                    if "error" in message:
                        body = error_of(message["error"])
                        raise SupervisorError(body.code, body.message)
                    return
        finally:
            self.line.close()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def send(store: Store, config: Config) -> Claim | None:
    """Send the first member this config would adopt its adoption, when the case is the
    plain one: a pool, a member of this sandkit ready, the kits' variables known from
    build(). None otherwise (nothing sent): pool.adopt does the rest, as without this."""
    from sandkit.hostconfig import registry_args

    if pool_size() == 0 or not config.host_cas or Sandbox(store.root, config.name).exists():
        return None
    config.arg_defaults = dict(registry_args())  # as create_or_adopt sets them
    environ = known_environ(config)
    if environ is None:
        return None
    mine = local_identity()
    for member in candidates(store, config):
        state = member.state()
        if state.state is not S.POOLED or not alive(state.supervisor_pid):
            continue
        if not same_kind(state, mine):
            return None  # drained by pool.adopt
        try:
            line = LineSocket.connect_unix(str(member.control))
        except OSError:
            return None
        params = {"name": config.name, "config": asdict(config), "identity": mine}
        try:
            line.send({"id": ADOPT_ID, "method": "adopt", "params": {**params, "environ": environ}})
        except ConnectionLost:
            line.close()
            return None
        return Claim(member, line)
    return None
