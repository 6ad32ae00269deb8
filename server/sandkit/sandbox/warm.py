"""A warm start's adoption request, sent before `run` imports asyncio, pydantic and the
client (~90 ms): those imports then overlap the member's adoption (~150 ms) instead of
preceding it. Light on purpose (a blocking socket, JSON lines; tests/unit/sandbox/
test_warm.py holds it): which members a config may adopt, and the request. The reply is
read, and every outcome handled, by ``pool.adopt`` (``sent=``), as for any claim."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandkit.pids import alive
from sandkit.rpc import ConnectionLost, LineSocket
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import (
    POOL_PREFIX,
    Config,
    Sandbox,
    SandboxError,
    State,
    Store,
    profile,
)
from sandkit.sandbox.wire import PROTOCOL, SupervisorError, error_of

if TYPE_CHECKING:
    import asyncio

S = SandboxState
ADOPT_ID = 1


def sandkit_version() -> str:
    """The installed distribution's version (what pip installed), else the package's: the
    first `sandkit-*.dist-info` on sys.path, as importlib.metadata finds it, without
    importing that (~15 ms, on the warm start's path)."""
    for entry in sys.path:
        try:
            found = sorted(Path(entry or ".").glob("sandkit-*.dist-info"))
        except OSError:
            continue
        for info in found:
            version = _metadata_version(info / "METADATA")
            if version is not None:
                return version
    import sandkit

    return sandkit.__version__


def _metadata_version(path: Path) -> str | None:
    """The Version header of a METADATA file (the headers end at the first empty line)."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                if line.startswith("Version:"):
                    return line.removeprefix("Version:").strip()
    except (OSError, UnicodeDecodeError):
        pass
    return None


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
    # The answer once read (wait()): [None] adopted, [error] not; answer() returns it.
    outcome: list[Exception | None] = field(default_factory=list)

    def wait(self) -> None:
        """Block until the answer (a caller without an event loop): as answer()."""
        try:
            while not self.outcome:
                self._take(self.line.receive())
        except ConnectionLost as exc:
            self.outcome.append(exc)
        finally:
            self.line.close()
        self._give()

    async def answer(self) -> None:
        """Wait for the answer, in the event loop (so that Ctrl-C still ends the wait):
        None once adopted; SupervisorError for an error reply; ConnectionLost when the
        member's supervisor went away."""
        import asyncio

        if self.outcome:  # wait() read it
            self._give()
            return
        loop, fd = asyncio.get_running_loop(), self.line.fileno()
        self.line.sock.setblocking(False)
        try:
            while not self.outcome:
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _wake, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                self._take(self.line.receive())
        except ConnectionLost as exc:
            self.outcome.append(exc)
        finally:
            self.line.close()
        self._give()

    def _take(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if message.get("id") != ADOPT_ID:
                continue  # an event: none belongs to this request
            if "error" in message:
                body = error_of(message["error"])
                self.outcome.append(SupervisorError(body.code, body.message))
            else:
                self.outcome.append(None)
            return

    def _give(self) -> None:
        if self.outcome[0] is not None:
            raise self.outcome[0]


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


def refill_after(sandbox: Sandbox, config: Config) -> None:
    """Top the pool up after ``sandbox`` was made, at low priority, outliving this command:
    with a member prepared for its kits when it adopted such a member, else a plain one."""
    spawn_fill(config, prepared=sandbox.state().adopted_prepared)


def spawn_fill(config: Config, prepared: bool) -> None:
    import subprocess

    if pool_size() == 0:
        return
    # At the lowest priority: the adopted sandbox's first command goes first. (Not later:
    # a delayed fill outlives a `pool drain` made in between and leaves a member behind.)
    argv = ["nice", "-n", "19", sys.executable, "-m", "sandkit", "pool", "fill",
            "--cpus", str(config.cpus), "--memory", f"{config.memory_mib}m", "--quiet"]  # fmt: skip
    if prepared:
        argv += ["--agent", config.agent, "--default", config.default_policy]
        for kit in config.kits:
            argv += ["--kit", kit]
        for key, value in config.kit_args.items():
            argv += ["--kit-arg", f"{key}={value}"]
    log_dir = Store().root
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "pool.log").open("ab") as out:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
