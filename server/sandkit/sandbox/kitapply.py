"""Kits applied inside a running guest, in sbx's order: host-mount@1 folders mounted (every
boot, before any hook), files/home, install commands (once,
at create), agent skills (agent-skill@1 into each agent-skills@1 folder, once), setup
files, startup commands (every boot; background ones do not block),
agent context; files/workspace are placed in the share (only where the workspace has no
such file). Environment variables and credential placeholders reach every process through
the supervisor's exec. A failure names the kit and the step, with the command's output."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit import guestuser
from sandkit.errors import SandkitError
from sandkit.kits.model import Command, Phase, ResolvedSandbox
from sandkit.logs import logger
from sandkit.vm.channel import GuestChannel
from sandkit.vm.qemu import host_share_tag

if TYPE_CHECKING:  # a running sandbox's supervisor never loads kit files: annotations only
    from sandkit.kits.loader import LoadedKit
    from sandkit.kits.source import KitSource

STATE_DIR = "/var/lib/sandkit"
HOME = "/home/agent"
AGENT_UID = str(guestuser.AGENT_UID)  # as write_file and a kit's `user:` give it
MARK_START = "<!-- sbx:kits-section start -->"
MARK_END = "<!-- sbx:kits-section end -->"

log = logger(__name__)


class KitApplyError(SandkitError):
    """A kit's step failed inside the sandbox."""


def _user(uid: str) -> str:
    return "root" if uid in ("0", "root") else ("agent" if uid in (AGENT_UID, "agent") else uid)


async def _run(
    channel: GuestChannel,
    argv: list[str],
    user: str,
    env: dict[str, str],
    what: str,
    data: bytes | None = None,
    cwd: str | None = None,
) -> None:
    run = await channel.exec(argv, env=env, user=_user(user), stdin=data is not None, cwd=cwd)
    if data is not None:
        await run.stdin(data, eof=True)
    result = await run.wait()
    if result.exit_status != 0:
        output = (result.stdout + result.stderr).decode(errors="replace").strip().splitlines()[-20:]
        raise KitApplyError(
            f"{what} failed with status {result.exit_status}:\n" + "\n".join(output)
        )


async def write_file(
    channel: GuestChannel,
    path: str,
    data: bytes,
    mode: int,
    user: str,
    overwrite: bool = True,
    what: str | None = None,
) -> None:
    """Written by root (kits may name any path in the guest), then owned by ``user``; by
    the guest agent itself, as starting programs is slow under TCG."""
    try:
        await channel.write_file(path, data, mode, _user(user), keep=not overwrite)
    except SandkitError as exc:
        raise KitApplyError(f"{what or f'writing {path}'} failed: {exc}") from None


def _step(cmd: Command, kind: str, n: int) -> str:
    label = f" ({cmd.description})" if cmd.description else ""
    return f"kit {cmd.origin.kit}: {kind} command {n + 1}{label} [{cmd.origin}]"


def kit_state_digest(sandbox: ResolvedSandbox, loaded: list[LoadedKit]) -> str:
    """What the once-per-sandbox steps depend on: the composed kits and the bytes of their
    files/home/**. Names the guest's marker, and a warm-pool prepared snapshot."""
    sources = {k.kit.name: k.source for k in loaded}
    h = hashlib.sha256(_model_json(sandbox).encode())
    for skill in sandbox.skills:
        for rel in skill.files:
            h.update(f"\0skill {skill.kit}/{skill.name}/{rel}\0".encode())
            h.update(sources[skill.kit].read(f"files/skills/{skill.name}/{rel}"))
    for static in sandbox.static_files:
        if static.target == "home":
            h.update(f"\0{static.kit}/{static.path}\0".encode())
            h.update(sources[static.kit].read(f"files/home/{static.path}"))
    return h.hexdigest()[:16]


def _model_json(sandbox: ResolvedSandbox) -> str:
    """The model as the digest reads it. Fields added later are left out while empty, so
    a sandbox made before them keeps its digest (and does not install again)."""
    later = ("sessions", "interactive_sessions", "user", "workdir", "command_missing")
    agent = {f for f in later if getattr(sandbox.agent, f) is None}
    top: dict[str, bool | set[str]] = {
        f: True for f in ("skills", "skill_dirs", "host_mounts") if not getattr(sandbox, f)
    }
    if agent:
        top["agent"] = agent
    return sandbox.model_dump_json(exclude=top)


def skill_steps(sandbox: ResolvedSandbox) -> list[tuple[str, str, str | None]]:
    """agent-skill@1 into every agent-skills@1 directory: (skill kit, guest path, the
    kit file written there) for bundled files, at the skill's path and at DIR/NAME; and
    (kit, DIR/NAME, None) for a link to a skill an install step or files/home put there.
    sandkit has no shared host skills store, so a directory only ever gets bundles."""
    steps: list[tuple[str, str, str | None]] = []
    for skill in sandbox.skills:
        for rel in skill.files:
            src = f"files/skills/{skill.name}/{rel}"
            steps.append((skill.kit, f"{skill.source}/{rel}", src))
            steps += [(skill.kit, f"{d.path}/{skill.name}/{rel}", src) for d in sandbox.skill_dirs]
        if not skill.files:
            steps += [(skill.kit, f"{d.path}/{skill.name}", None) for d in sandbox.skill_dirs]
    return steps


# sh -c _LINK sh SOURCE LINK NAME IDS: LINK -> SOURCE, the link the agent's (IDS). Run by
# root, so the folders it makes under the agent's home are given to the agent, as
# write_file makes a bundled skill's (the agent writes its own ~/.claude and adds skills).
_LINK = """set -e
test -d "$1" || { echo "the skill folder $1 is not in the sandbox: ship it in the kit \
under files/skills/$3/ or create it in an install step" >&2; exit 1; }
d=${2%/*}; top=
while [ -n "$d" ] && [ ! -e "$d" ] && [ ! -L "$d" ]; do top=$d; d=${d%/*}; done
mkdir -p "${2%/*}"
case $top in {home}/*) chown -R "$4" "$top";; esac
ln -sfn "$1" "$2"
chown -h "$4" "$2"
""".replace("{home}", HOME)


async def place_skills(
    channel: GuestChannel, sandbox: ResolvedSandbox, sources: dict[str, KitSource]
) -> None:
    by_link = {f"{d.path}/{s.name}": s for s in sandbox.skills for d in sandbox.skill_dirs}
    for kit, target, src in skill_steps(sandbox):
        what = f"kit {kit}: skill file {target}"
        if src is not None:
            data = sources[kit].read(src)
            # The kit file's permissions (a skill's scripts stay executable), no set-id bits.
            mode = sources[kit].files.get(src, 0o644) & 0o777
            await write_file(channel, target, data, mode, AGENT_UID, what=what)
            continue
        skill = by_link[target]
        argv = ["sh", "-c", _LINK, "sh", skill.source, target, skill.name, guestuser.AGENT_IDS]
        await _run(channel, argv, "0", {}, f"{what} [{skill.origin}]")


async def apply_kits(
    channel: GuestChannel,
    sandbox: ResolvedSandbox,
    loaded: list[LoadedKit],
    env: dict[str, str],
    workspace: str | None,
    share: Path | None,
    set_phase: Callable[[Phase], None] = lambda phase: None,
    first_boot_only: bool = False,
    credential_files: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Run every boot; steps meant once per sandbox leave a marker in the guest's disk.
    ``set_phase`` opens the proxy's install-phase rules for the install commands only.
    ``first_boot_only`` stops after those steps (a warm-pool member prepared for these
    kits: the rest runs when a sandbox adopts it). ``credential_files`` are the OAuth
    credentials' files (sentinels only), written before the startup commands so that an
    agent that reads its sign-in from a file starts signed in."""
    if first_boot_only and sandbox.host_mounts:
        # A member has no shares of these kits' folders (supervisor/adopt.py), and the
        # installs must see the mounts: such kits are not prepared, they start cold.
        raise KitApplyError(
            "a warm-pool member cannot be prepared for kits with host-mount@1 folders"
        )
    marker = f"{STATE_DIR}/created-{kit_state_digest(sandbox, loaded)}"
    first_boot = await _is_first_boot(channel, sandbox, marker)
    sources = {k.kit.name: k.source for k in loaded}
    await mount_host_mounts(channel, sandbox)
    if first_boot:
        await _first_boot_steps(channel, sandbox, sources, env, workspace, set_phase)
    if first_boot_only:
        if first_boot:
            await write_file(channel, marker, b"", 0o644, "0", what="recording the kit state")
        return
    await _write_setup_files(channel, sandbox, workspace)
    for path, data in credential_files:
        await write_file(channel, path, data, 0o600, AGENT_UID, what=f"credential file {path}")
    await _run_startup(channel, sandbox, env, workspace)
    await write_agent_context(channel, sandbox, workspace)
    if first_boot:
        await write_file(channel, marker, b"", 0o644, "0", what="recording the kit state")


async def _is_first_boot(channel: GuestChannel, sandbox: ResolvedSandbox, marker: str) -> bool:
    # Sandboxes made before the digest covered files/home carry the model's digest alone.
    legacy = hashlib.sha256(_model_json(sandbox).encode()).hexdigest()[:16]
    return (
        await channel.read_file(marker) is None
        and await channel.read_file(f"{STATE_DIR}/created-{legacy}") is None
    )


# Per (tag, path): the mount point made (a new folder under the agent's home is the
# agent's, as if the agent had made it), then mounted once the device is there (a q35
# guest's share is hotplugged an instant before). Run on every boot; mounted stays so.
_MOUNT = """set -e
while [ $# -ge 2 ]; do
  tag=$1; p=$2; shift 2
  if mountpoint -q "$p"; then continue; fi
  d=$p; top=
  while [ -n "$d" ] && [ ! -e "$d" ] && [ ! -L "$d" ]; do top=$d; d=${d%/*}; done
  mkdir -p "$p"
  case $top in /home/agent/*) chown -R {ids} "$top";; esac
  i=0
  while ! err=$(mount -t virtiofs "$tag" "$p" 2>&1); do
    i=$((i+1)); if [ $i -gt 1000 ]; then echo "$err" >&2; exit 1; fi; sleep 0.01
  done
done""".replace("{ids}", guestuser.AGENT_IDS)  # str.format would need every shell brace doubled


async def mount_host_mounts(channel: GuestChannel, sandbox: ResolvedSandbox) -> None:
    """host-mount@1: each share (tag hmN, in the kits' order, as the supervisor attached
    them: supervisor/boot.py) at its path, by root, before the kits' hooks. The folder's
    owner and mode are the host folder's (the agent's and the kit's mode when sandkit made
    it; kept as they are afterwards). One exec for all: each costs time under TCG."""
    if not sandbox.host_mounts:
        return
    args = [a for n, h in enumerate(sandbox.host_mounts) for a in (host_share_tag(n), h.path)]
    where = ", ".join(f"{h.path} [{h.origin}]" for h in sandbox.host_mounts)
    await _run(channel, ["sh", "-c", _MOUNT, "sh", *args], "0", {}, f"host-mount@1 {where}")


async def _first_boot_steps(
    channel: GuestChannel,
    sandbox: ResolvedSandbox,
    sources: dict[str, KitSource],
    env: dict[str, str],
    workspace: str | None,
    set_phase: Callable[[Phase], None],
) -> None:
    """files/home, the install commands (in the install phase), then the agent skills."""
    for static in sandbox.static_files:  # files/home/** (files/workspace/**: elsewhere)
        if static.target != "home":
            continue
        data = sources[static.kit].read(f"files/home/{static.path}")
        await write_file(channel, f"{HOME}/{static.path}", data, static.mode, AGENT_UID)
    set_phase(Phase.INSTALL)
    try:
        for n, cmd in enumerate(sandbox.install):
            await _run(
                channel, list(cmd.argv), cmd.user, env, _step(cmd, "install", n), cwd=workspace
            )
    finally:
        set_phase(Phase.RUNTIME)
    # After the install steps, which may put a skill's folder in place.
    await place_skills(channel, sandbox, sources)


async def _write_setup_files(
    channel: GuestChannel, sandbox: ResolvedSandbox, workspace: str | None
) -> None:
    for f in sandbox.files:
        content = f.content.replace("${WORKDIR}", workspace or HOME)
        await write_file(
            channel,
            f.path,
            content.encode(),
            f.mode,
            f.user,
            overwrite=f.overwrite,
            what=f"kit {f.origin.kit}: setup file {f.path} [{f.origin}]",
        )


async def _run_startup(
    channel: GuestChannel, sandbox: ResolvedSandbox, env: dict[str, str], workspace: str | None
) -> None:
    """The startup commands, in order; background ones are started and not waited for."""
    for n, cmd in enumerate(sandbox.startup):
        if cmd.background:
            await channel.exec(list(cmd.argv), env=env, user=_user(cmd.user), cwd=workspace)
        else:
            await _run(
                channel, list(cmd.argv), cmd.user, env, _step(cmd, "startup", n), cwd=workspace
            )


async def write_agent_context(
    channel: GuestChannel, sandbox: ResolvedSandbox, workspace: str | None
) -> None:
    """The base kit's context file where its profile says (kits.context: an explicit
    agent-context directory, else the workspace's parent folder, as sbx does), with a
    managed index of the mixins' files between markers; text outside is kept."""
    from sandkit.kits.context import profile_paths

    targets = profile_paths(sandbox, workspace)
    if not targets or not sandbox.agent_context:
        return
    base = [c for c in sandbox.agent_context if c.kit == sandbox.agent_name]
    mixins = [c for c in sandbox.agent_context if c.kit != sandbox.agent_name]
    index = "\n".join(f"- {c.kit}: kits-agent-context/{c.kit}.md" for c in mixins)
    section = f"{MARK_START}\n## Kits\n{index}\n{MARK_END}\n" if mixins else ""
    body = "\n".join(c.content.rstrip() for c in base)
    for target in targets:
        parent = posixpath.dirname(target)
        for ctx in mixins:
            await write_file(
                channel,
                f"{parent}/kits-agent-context/{ctx.kit}.md",
                ctx.content.encode(),
                0o644,
                AGENT_UID,
            )
        current = await channel.read_file(target)
        text = current.decode(errors="replace") if current is not None else body + "\n"
        if MARK_START in text and MARK_END in text:
            head, _, rest = text.partition(MARK_START)
            _, _, tail = rest.partition(MARK_END)
            text = head + section.rstrip("\n") + tail if section else head.rstrip("\n") + tail
        elif section:
            text = text.rstrip("\n") + "\n\n" + section
        await write_file(channel, target, text.encode(), 0o644, AGENT_UID)


def place_workspace_files(
    sandbox: ResolvedSandbox, loaded: list[LoadedKit], share: Path, workspace: Path
) -> list[str]:
    """files/workspace/** into the share where the workspace has no such file (sync then
    brings them to the host); a kit never overwrites the user's files. Both trees are
    walked through safefs: a link in either (the guest's or the repository's) is never
    followed, so a kit's file cannot land outside the share."""
    from sandkit.sync.safefs import SafeTree, UnsafePath

    sources = {k.kit.name: k.source for k in loaded}
    placed = []
    host, guest = SafeTree(workspace), SafeTree(share)
    try:
        for static in sandbox.static_files:
            if static.target != "workspace":
                continue
            try:
                if host.lstat(static.path) is not None or guest.lstat(static.path) is not None:
                    continue
                data = sources[static.kit].read(f"files/workspace/{static.path}")
                guest.write_atomic(static.path, data, static.mode & 0o777, keep_existing=True)
            except (UnsafePath, FileExistsError) as exc:
                log.warning("kit file %s not placed: %s", static.path, exc)
                continue
            placed.append(static.path)
    finally:
        host.close()
        guest.close()
    return placed
