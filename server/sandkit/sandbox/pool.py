"""The warm pool: members booted ahead of time, per machine shape, that a new sandbox
adopts instead of booting cold; filling it, draining members of another sandkit, and
handing an adopted member this client's credential variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sandkit.errors import SandkitError
from sandkit.hostconfig import registry_args
from sandkit.logs import logger
from sandkit.pids import alive
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.lifecycle import create, remove, start
from sandkit.sandbox.protocol import ErrorCode, Identity
from sandkit.sandbox.remote import SupervisorError
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import (
    POOL_PREFIX,
    Config,
    Profile,
    Sandbox,
    SandboxError,
    State,
    Store,
    profile,
)
from sandkit.sandbox.warm import Claim, candidates, spawn_fill
from sandkit.sandbox.warm import pool_members as pool_members
from sandkit.sandbox.warm import pool_size as pool_size
from sandkit.sandbox.warm import refill_after as refill_after
from sandkit.sandbox.warm import shape as shape

log = logger(__name__)
S = SandboxState
_candidates = candidates  # members a config may adopt, in order (warm.py: light)


async def adopt(
    store: Store,
    config: Config,
    environ: Mapping[str, str] | None = None,
    sent: Claim | None = None,
) -> Sandbox | None:
    """Claim a paused pool member of the config's shape and make it this sandbox: one
    prepared for the same agent and kits first, else a plain one; None when none is ready
    or the adoption fails in any way (the caller boots one cold). A member whose
    supervisor runs another sandkit (version, protocol, installation) is never adopted:
    it is drained, and the pool refilled with this sandkit's. ``environ``: the host
    variables the kits' credentials name, handed to the member with the adoption.
    ``sent``: a claim warm.send made already; its answer is taken first."""
    if not config.host_cas:  # members already trust the host's CAs: boot this one cold
        return None
    mine = Identity.local()
    drained = 0
    try:
        if sent is not None:
            outcome = await _claim(store, sent.member, config, mine, environ, sent)
            if isinstance(outcome, Sandbox):
                return outcome
            if outcome is not _TAKEN:
                drained += 1
                return None
        for member in _candidates(store, config):
            state = member.state()
            if state.state is not S.POOLED or not alive(state.supervisor_pid):
                continue
            if not same_kind(state, mine):
                log.info("draining pool member %s: %s", member.name, kind_of(state))
                await remove(store, member, force=True)
                drained += 1
                continue
            outcome = await _claim(store, member, config, mine, environ)
            if isinstance(outcome, Sandbox):
                return outcome
            if outcome is not _TAKEN:  # failed: cold, and the pool topped up again
                drained += 1
                return None
        return None
    finally:
        if drained:
            spawn_fill(config, prepared=False)


def same_kind(state: State, mine: Identity) -> bool:
    """Whether the supervisor that wrote ``state`` runs this sandkit."""
    if state.sandkit is None or state.protocol is None or state.prefix is None:
        return False  # written by a sandkit that did not say (PROTOCOL 1)
    theirs = Identity(
        sandkit=state.sandkit,
        protocol=state.protocol,
        executable=state.executable or "",
        prefix=state.prefix,
    )
    return theirs.same_as(mine)


def kind_of(state: State) -> str:
    """For `sandkit ls` and logs: the sandkit a sandbox's supervisor runs."""
    if state.sandkit is None:
        return "an older sandkit"
    return f"sandkit {state.sandkit} (protocol {state.protocol}) in {state.prefix}"


def other_sandkit(state: State, mine: Identity) -> str:
    """For `sandkit ls`: "" when the sandbox's supervisor runs this sandkit (or none
    runs), else what it runs: "older" (it did not say), a version, and the installation
    or protocol that differs."""
    if not (state.state.live and alive(state.supervisor_pid)) or same_kind(state, mine):
        return ""
    if state.sandkit is None:
        return "older"
    if state.prefix != mine.prefix:
        return f"{state.sandkit} (other install: {state.prefix})"
    return f"{state.sandkit} (protocol {state.protocol})"


_TAKEN = object()  # another client adopted the member first: try the next


async def _claim(
    store: Store,
    member: Sandbox,
    config: Config,
    mine: Identity,
    environ: Mapping[str, str] | None = None,
    sent: Claim | None = None,
) -> object:
    """Ask the member to become this sandbox: the Sandbox, _TAKEN, or None after any
    failure (a member left in doubt is drained; a half-adopted sandbox is removed)."""
    from dataclasses import asdict

    try:
        if sent is not None:  # the request went before this process's imports
            await sent.answer()
        else:
            async with await SupervisorClient.connect(member.control) as client:
                await client.adopt(config.name, asdict(config), identity=mine, environ=environ)
        return Sandbox(store.root, config.name)
    except SupervisorError as exc:
        if exc.code is ErrorCode.MEMBER_TAKEN:
            return _TAKEN
        failure: Exception = exc
    except Exception as exc:  # whatever it is, the user's sandbox starts cold
        failure = exc
    log.warning("adopting pool member %s failed (%s); starting cold", member.name, failure)
    # Refused before anything changed (the user's kits have an error): it stays pooled.
    refused = isinstance(failure, SupervisorError) and failure.code in REFUSALS
    await _clean_after_failure(store, member, config, keep_member=refused)
    return None


REFUSALS = (ErrorCode.FAILED, ErrorCode.BAD_REQUEST)


async def _clean_after_failure(
    store: Store, member: Sandbox, config: Config, keep_member: bool
) -> None:
    half = Sandbox(store.root, config.name)
    if half.exists() and half.state().adopted_from == member.name:
        await remove(store, half, force=True)  # renamed, then failed: not the user's yet
    if member.exists():
        state = member.state()
        if not (keep_member and state.state is S.POOLED):
            await remove(store, member, force=True)  # in doubt: drained, refilled later


async def create_or_adopt(
    store: Store, config: Config, workspace: Path | None, sent: Claim | None = None
) -> tuple[Sandbox, bool]:
    """A new sandbox: adopted from the warm pool when a member is ready, else created (and
    booted later, cold). Either way the kits are checked first. ``sent``: warm.send's
    claim, when `run` sent one before its imports."""
    config.arg_defaults = dict(registry_args())
    if sent is not None:  # warm.send checked the folder and the name before it sent
        # Its request carries the variables; another member (this one taken) gets them too.
        adopted = await adopt(store, config, _environ_or_none(config), sent)
        if adopted is not None:
            return adopted, True
    if workspace is not None and not workspace.is_dir():
        raise SandboxError(f"{workspace} is not a directory")
    if Sandbox(store.root, config.name).exists():
        raise SandboxError(f"a sandbox named '{config.name}' exists already")
    if pool_size() > 0 and sent is None:  # the member's supervisor checks the kits
        # The member's supervisor was started with another environment: it gets this
        # client's credential variables with the adoption (held in its memory only), so
        # that adoption and a cold start inject the same.
        adopted = await adopt(store, config, _environ_or_none(config))
        if adopted is not None:
            return adopted, True
    return create(store, config, workspace), False


def credential_environ(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host variables the config's kits name for credentials, as this client sees
    them (whether the proxy may read one is still the user's grant, checked there)."""
    from sandkit.sandbox.request import summary_of

    env = os.environ if environ is None else environ
    summary = summary_of(config)  # what build() learned in this process, when it did
    names: set[str] = set(summary.env_names if summary is not None else ())
    if summary is None:
        from sandkit.kits import resolve

        defaults = config.arg_defaults
        resolution = resolve(config.agent, config.kits, config.kit_args, defaults=defaults)
        for cred in resolution.sandbox.credentials:
            names.update([cred.env] if cred.env else [])
            names.update(cred.sources.env if cred.sources else ())
    return {name: env[name] for name in sorted(names) if name in env}


def _environ_or_none(config: Config) -> dict[str, str] | None:
    """credential_environ, or None (the member keeps its own) when the kits cannot say."""
    try:
        return credential_environ(config)
    except (SandkitError, OSError) as exc:
        log.warning("the host's credential variables are not handed over: %s", exc)
        return None


async def fill(
    store: Store,
    cpus: int,
    memory_mib: int,
    size: int | None = None,
    prepared_for: Config | None = None,
) -> int:
    """Start members until the pool holds ``size`` of this shape (prepared for the agent and
    kits of ``prepared_for``, when given); returns how many started."""
    import secrets

    want = pool_size() if size is None else size
    wanted = shape(cpus, memory_mib)
    kind = profile(prepared_for) if prepared_for is not None else None
    for member in pool_members(store):  # a member whose supervisor died is of no use
        state = member.state()
        if state.state in (S.CRASHED, S.STOPPED) or (
            state.state is S.CREATED and not alive(state.supervisor_pid)
        ):
            await remove(store, member, force=True)
    started = 0
    while _count(store, wanted, kind) < want:  # counted each time: adoptions go on meanwhile
        # Never reuse a member's name: an adopted VM's QEMU still names its first folder.
        name = f"{POOL_PREFIX}{wanted}-{secrets.token_hex(3)}"
        config = Config(
            name=name,
            agent="shell",
            cpus=cpus,
            memory_mib=memory_mib,
            default_policy="deny-all",
            pool_shape=wanted,
        )
        if prepared_for is not None:  # installs reach what the kits allow, as in a sandbox
            config.agent, config.kits = prepared_for.agent, list(prepared_for.kits)
            config.kit_args = dict(prepared_for.kit_args)
            config.default_policy, config.pool_prepared = prepared_for.default_policy, True
        member = create(store, config, None)
        try:
            await start(member)
        except BaseException:
            await remove(store, member, force=True)  # no dead member counted as ready
            raise
        started += 1
    return started


def _count(store: Store, wanted: str, kind: Profile | None) -> int:
    count = 0
    for member in pool_members(store):
        try:
            c = member.config()
        except SandboxError:
            continue
        same = c.pool_shape == wanted and (profile(c) == kind if c.pool_prepared else kind is None)
        state = member.state()
        if same and state.state in (S.POOLED, S.BOOTING) and alive(state.supervisor_pid):
            count += 1
    return count
