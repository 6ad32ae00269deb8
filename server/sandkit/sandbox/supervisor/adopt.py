"""Adoption: a paused warm-pool member becomes the sandbox a client asked for. Only a
client of the same sandkit (version, protocol, installation) may adopt it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import SandkitError
from sandkit.kits.images import image_variant
from sandkit.logs import logger
from sandkit.sandbox.protocol import AdoptParams, AdoptResult, ControlError, ErrorCode
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Sandbox, check_name, profile, profile_of
from sandkit.sandbox.supervisor import egress, guest, workspace
from sandkit.sandbox.supervisor.boot import grow_root
from sandkit.sandbox.supervisor.process import Ending, describe_failure
from sandkit.vm.machine import MachinePaths
from sandkit.vm.qemu import DEFAULT_DISK_MIB

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.sandbox.supervisor.process import Supervisor

log = logger("sandkit.supervisor")
S = SandboxState
TAKEN = "pool member taken"


def claim(sup: Supervisor, params: AdoptParams) -> None:
    """Refuse what cannot be adopted, else mark the member as being adopted (before any
    await: one adopter only)."""
    if params.identity is not None and not params.identity.same_as(sup.identity):
        raise ControlError(
            ErrorCode.FOREIGN_VERSION,
            f"this pool member runs {sup.identity.describe()}, not {params.identity.describe()}",
        )
    if sup.runstate is not S.POOLED or sup.stopping:
        raise ControlError(ErrorCode.MEMBER_TAKEN, TAKEN)
    if sup.config.pool_prepared and profile(sup.config) != profile_of(params.config):
        raise ControlError(ErrorCode.MEMBER_TAKEN, f"{TAKEN}: prepared for other kits")
    sup.move(S.ADOPTING)


async def adopt(sup: Supervisor, params: AdoptParams) -> AdoptResult:
    """Become sandbox ``params.name``: take its directory name and config, fill the share
    from its workspace, resume, make the guest unique, then the same kit application
    as a cold boot."""
    claim(sup, params)
    started = time.monotonic()
    member, name = sup.sandbox.name, params.name
    target, new_config, resolution = await _take_name(sup, params)
    if params.environ is not None:  # the adopter's credential variables, for the proxy
        egress.set_host_environ(sup, params.environ)
    old_control = sup.sandbox.control
    prepared = sup.config.pool_prepared
    sup.sandbox = Sandbox(target.parent, name)
    sup.config = new_config
    try:
        sup.sandbox.save_config(new_config)
        sup.save(adopted_from=member, adopted_prepared=prepared, started=time.time())
        if sup.sandbox.control != old_control:  # the socket moved with the folder, or not
            await sup.listen(sup.sandbox.control)
        await resume(sup, resolution)
        if sup.stopping:
            raise SandkitError("it was stopped while it was adopted")
    except Exception as exc:
        if not isinstance(exc, SandkitError):
            log.exception("adoption failed")
        message = describe_failure(exc)
        sup.end(Ending(S.CRASHED, message))
        raise ControlError(ErrorCode.FAILED, f"sandbox '{name}' did not start: {message}") from None
    sup.move(S.RUNNING)
    sup.spawn(sup.serve_ports(), "ports")
    seconds = time.monotonic() - started
    log.info("adopted %s as %s in %.2f s", member, name, seconds)
    return AdoptResult(member=member, seconds=round(seconds, 3))


async def _take_name(sup: Supervisor, params: AdoptParams) -> tuple[Path, Config, Resolution]:
    """Everything that can refuse, then the folder renamed; on a refusal the member
    goes back to waiting, untouched."""
    name = params.name
    try:
        try:
            target = sup.sandbox.dir.parent / check_name(name)
            new_config = Config(**{**params.config, "name": name, "pool_shape": None})
        except (TypeError, SandkitError) as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, f"cannot adopt as '{name}': {exc}") from None
        if target.exists():
            raise ControlError(
                ErrorCode.FAILED, f"cannot adopt as '{name}': a sandbox has that name"
            )
        # The kits (the caller has not checked them): their errors are the user's.
        try:
            resolution = await asyncio.to_thread(guest.resolve, new_config)
        except SandkitError as exc:
            raise ControlError(ErrorCode.FAILED, str(exc)) from None
        # A member boots the base image: a sandbox that needs Docker's variant starts cold
        # (the member goes back to waiting) rather than silently without its engine.
        wanted = image_variant(resolution.sandbox)
        if sup.machine is not None and wanted != sup.machine.image.variant:
            raise ControlError(
                ErrorCode.MEMBER_TAKEN, f"{TAKEN}: it runs the {sup.machine.image.variant} image"
            )
        # host-mount@1: a member has no virtiofsd for the kits' folders and its installs
        # ran without them; the cold start (a golden clone, which hotplugs them before any
        # kit step) costs about what starting and hotplugging them here would, so the
        # member goes back to waiting rather than adoption growing a second share path.
        if resolution.sandbox.host_mounts:
            raise ControlError(ErrorCode.MEMBER_TAKEN, f"{TAKEN}: the kits mount host folders")
        if sup.stopping:
            raise ControlError(ErrorCode.MEMBER_TAKEN, TAKEN)
        try:
            sup.sandbox.dir.rename(target)
        except OSError as exc:
            raise ControlError(
                ErrorCode.FAILED, f"cannot adopt this pool member as '{name}': {exc.strerror}"
            ) from None
    except BaseException:
        if not sup.stopping:
            sup.move(S.POOLED)  # still waiting for a sandbox
        raise
    return target, new_config, resolution


async def resume(sup: Supervisor, resolution: Resolution) -> None:
    """The guest resumes and is made unique while the host composes the kits and fills
    the share; the kits are applied once both are done."""
    machine = sup.machine
    assert machine is not None and machine.qmp is not None
    assert machine.channel is not None and sup.proxy is not None
    c = sup.config
    steps: list[str] = []
    mark = time.monotonic()

    def lap(what: str) -> None:
        nonlocal mark
        steps.append(f"{what} {1000 * (time.monotonic() - mark):.0f} ms")
        mark = time.monotonic()

    machine.paths = MachinePaths(sup.sandbox.dir, machine.paths.sockets)
    await machine.qmp.execute("cont")
    in_guest: dict[str, float] = {}

    async def make_unique() -> None:
        in_guest.update(await guest.make_unique(sup))

    unique = sup.attempt(make_unique(), "make-unique")
    try:
        await egress.reconfigure(sup, resolution)
        lap("kits and proxy")
        if c.workspace:
            await workspace.start_sync(sup, Path(c.workspace))
            await workspace.place_workspace_files(sup, Path(c.workspace))
            lap("sync")
    finally:
        error = await unique
        if error is not None:  # its failure, if any, is the one to report
            raise error
    in_the_guest = ", ".join(f"{step} {ms:.0f} ms" for step, ms in in_guest.items())
    lap(f"guest made unique ({in_the_guest})")
    # This sandbox's CAs (an upstream CA) in GUEST_CA and the bundle: nothing to do when
    # they are the ones the member pooled with.
    trust = guest.trust_ca(sup, unless_trusted=True)
    if c.disk_mib > DEFAULT_DISK_MIB:  # members are cloned from goldens of the default size
        await asyncio.gather(grow_root(machine, c.disk_mib), trust)
        lap("disk grown")
    else:
        await trust
    await guest.apply_kits(sup)
    lap("kits applied")
    log.info("adoption steps: %s", ", ".join(steps))
