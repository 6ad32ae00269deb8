"""The supervisor: one background process per sandbox (like a containerd shim). It owns
the VM (QEMU, virtiofsd), the egress proxy, and the control socket through which the CLI
and the language server reach the sandbox; it outlives the client that started it.

    python -m sandkit.sandbox.supervisor NAME [IMAGE_DIR]   (the CLI passes the image it built)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandkit.errors import SandkitError
from sandkit.hostconfig import local_cas, registry_credentials, registry_hosts
from sandkit.kits.model import Phase
from sandkit.net.actions import Action
from sandkit.net.approvals import ApprovalBroker, exact_host
from sandkit.net.cafile import read_certificates
from sandkit.sandbox.protocol import encode
from sandkit.sandbox.store import Config, Sandbox, State, Store
from sandkit.tasks import spawn
from sandkit.vm import golden
from sandkit.vm.channel import Execution
from sandkit.vm.image import ensure_image
from sandkit.vm.image import load as load_image
from sandkit.vm.machine import Machine, MachinePaths, VMError, choose_accel, tail

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.net.proxy import EgressProxy, ProxySettings
    from sandkit.sync.engine import SyncEngine
    from sandkit.sync.protect import Protected

log = logging.getLogger("sandkit.supervisor")

GUEST_CA = "/usr/local/share/ca-certificates/sandkit-proxy.crt"
GUEST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_BUNDLE_VARS = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
)


class Supervisor:
    def __init__(self, sandbox: Sandbox, image_path: Path | None = None) -> None:
        self.sandbox = sandbox
        self.image_path = image_path
        self.config = sandbox.config()
        self.state = State(state="booting", supervisor_pid=os.getpid(), started=time.time())
        self.sandbox.save_state(self.state)
        self.machine: Machine | None = None
        self.sync: SyncEngine | None = None
        self.sync_loop: asyncio.AbstractEventLoop | None = None
        self.sync_watchers: set[asyncio.Queue[dict[str, Any]]] = set()  # attached clients
        self.sync_stop = asyncio.Event()
        self.sync_task: asyncio.Task[None] | None = None
        self.guest_env: dict[str, str] = {}
        self.resolution: Resolution | None = None
        self.ca_pem = b""
        self.proxy: EgressProxy | None = None
        self.approvals = ApprovalBroker()
        self.servers: list[asyncio.Server] = []
        self.adopting = asyncio.Lock()
        self.stopping = False
        self.done = asyncio.Event()

    def save(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.state, key, value)
        self.sandbox.save_state(self.state)

    async def run(self) -> int:
        try:
            await self.boot()
        except Exception as exc:  # a bug must not leave QEMU or virtiofsd behind
            if not isinstance(exc, SandkitError):
                log.exception("boot failed")
            message = str(exc) if isinstance(exc, SandkitError) else f"internal error: {exc!r}"
            self.save(state="crashed", error=message)
            await self.cleanup()
            return 1
        if self.stopping:  # stopped while it booted: stop() found no VM to stop yet
            await self.cleanup()
            self.save(state="stopped", qemu_pid=None, error=None)
            return 0
        self.servers.append(
            await asyncio.start_unix_server(self.client, str(self.sandbox.control), limit=1 << 22)
        )
        pooled = self.config.pool_shape is not None
        self.save(
            state="pooled" if pooled else "running",
            qemu_pid=self.machine.pid if self.machine else None,
        )
        spawn(self.watch(), "watch-vm")
        await self.done.wait()
        for server in self.servers:
            server.close()
        self.sandbox.control.unlink(missing_ok=True)
        return 0

    @property
    def proxy_socket(self) -> Path:
        """The proxy's Unix socket, in a private folder: only the owner's processes (the
        VM's forward) can connect; no other local user can use the sandbox's credentials."""
        return self.sandbox.sockets / "egress" / "proxy.sock"

    async def boot(self) -> None:
        """Start QEMU first and set up the proxy while the guest boots: the proxy's socket
        is bound now, so the VM's forward can name it before anything listens."""
        from sandkit.net.access import bind_private

        c = self.config
        self.sandbox.sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
        listener = bind_private(self.proxy_socket)
        image = load_image(self.image_path) if self.image_path else None
        if image is None:
            image = await asyncio.to_thread(ensure_image)
        params = {"hostname": c.name, "proxy": "10.0.2.100:3128"}
        if c.workspace:
            params["ws"] = c.workspace
        clone, resolution, kits = None, None, None
        # Pool members, and a new sandbox's first start, restore a clone of the shape's golden
        # snapshot (built first if need be); a sandbox that has a disk boots from it.
        first_start = not (self.sandbox.dir / "disk.qcow2").exists()
        if c.pool_shape or (first_start and golden.enabled()):
            accel = await asyncio.to_thread(choose_accel, image)
            if c.pool_prepared:  # or of the snapshot prepared for its kits, if there is one
                from sandkit.sandbox.kitapply import kit_state_digest

                resolution = await asyncio.to_thread(self.resolve, c)
                kits = kit_state_digest(resolution.sandbox, list(resolution.loaded))
                # The policy the installs run under is part of what was prepared.
                kits = hashlib.sha256(f"{kits}/{c.default_policy}".encode()).hexdigest()[:16]
            clone = await golden.clone(
                image, c.cpus, c.memory_mib, accel, self.sandbox.dir, c.name, kits=kits
            )
            params = dict(golden.POOL_PARAMS)
        self.machine = Machine(
            image,
            MachinePaths(self.sandbox.dir, self.sandbox.sockets),
            cpus=c.cpus,
            memory_mib=c.memory_mib,
            # A restored VM gets its share by hotplug; a member's starts empty, and is filled
            # and bound at the workspace's path at adoption.
            share=self.sandbox.share if c.workspace or c.pool_shape else None,
            params=params,
            proxy_socket=self.proxy_socket,
            machine="q35" if clone else "microvm",
            ram_file=clone.ram if clone else None,
            restore_from=clone.state if clone else None,
            keep_ram_file=bool(clone and clone.prepare),
        )
        if c.workspace:  # the share holds the workspace before the guest looks at it
            await self.start_sync(Path(c.workspace))
        launch = spawn(self.machine.launch(), "launch")
        log.info("QEMU starting")
        try:
            self.proxy = await self.make_proxy(listener, resolution)
        except BaseException:
            launch.cancel()
            listener.close()
            raise
        log.info("proxy listening on %s", self.proxy_socket)
        if c.workspace:
            await self.place_workspace_files(Path(c.workspace))
        try:
            await launch
        except VMError:
            if clone is not None:  # never restore from it again: the next clone rebuilds
                golden.discard(clone.key)
            raise
        if clone is not None:
            clone.state.unlink(missing_ok=True)
            log.info("restored from golden snapshot %s (%s)", clone.key, self.machine.accel)
            if c.pool_shape:
                await self.wait_in_pool(clone, kits)
                return
            if c.workspace:
                await self.machine.attach_share()
            await self.make_unique()  # as an adoption does: its name, entropy, clock, workspace
        else:
            log.info("guest agent ready (%s)", self.machine.accel)
        await self.trust_ca()
        await self.apply_kits()
        log.info("kits applied")

    async def wait_in_pool(self, clone: golden.Clone, kits: str | None) -> None:
        """A restored member: its kits prepared (and saved for the next clones) when asked
        for, the share hotplugged, the first commands run once, then paused (no CPU)."""
        assert self.machine is not None and self.machine.channel is not None
        assert self.machine.qmp is not None
        if clone.prepare and kits is not None:
            await self.prepare_kits(clone, kits)
        await self.trust_ca()
        await self.machine.attach_share()
        # Run once what every adoption runs first (a command as the agent user, a shell),
        # so that its code is translated (TCG's cache is not in the snapshot) before the pause.
        for argv in (["true"], ["sh", "-c", "cat /dev/null"], ["bash", "-lc", "true"]):
            await self.machine.channel.run(argv, user="agent", env=self.guest_env)
        await self.machine.qmp.execute("stop")
        log.info("pooled (%s), paused", self.config.pool_shape)

    async def prepare_kits(self, clone: golden.Clone, kits: str) -> None:
        """Run the kits' once-per-sandbox steps (files/home, installs through this member's
        proxy) and save the guest as the kits' prepared snapshot, without this member's
        CA: every clone trusts its own."""
        assert self.machine is not None and self.machine.channel is not None
        assert self.machine.qmp is not None and self.machine.ram_file is not None
        channel, pristine = self.machine.channel, "/var/lib/sandkit/bundle.pristine"
        started = time.monotonic()
        keep = f"mkdir -p /var/lib/sandkit && cp -p {GUEST_CA_BUNDLE} {pristine}"
        forget = f"mv {pristine} {GUEST_CA_BUNDLE} && rm -f {GUEST_CA} /var/lib/sandkit/ca-*"

        async def guest_sh(script: str) -> None:
            done = await channel.run(["sh", "-c", script])
            if done.exit_status != 0:
                raise SandkitError("cannot prepare the snapshot: " + done.stderr.decode().strip())

        await guest_sh(keep)
        await self.trust_ca()
        await self.apply_kits(first_boot_only=True)
        await guest_sh(f"{forget} && sync")
        key = await golden.save_prepared(self.machine, clone, kits, str(self.config.pool_shape))
        await self.machine.qmp.execute("cont")
        self.machine.ram_file.unlink(missing_ok=True)
        log.info("prepared snapshot %s built in %.1f s", key, time.monotonic() - started)

    async def place_workspace_files(self, workspace: Path) -> None:
        """The kits' files/workspace/** into the share, then to the host at once (not
        when a watcher notices)."""
        from sandkit.sandbox.kitapply import place_workspace_files

        if self.resolution is None:
            return
        placed = place_workspace_files(
            self.resolution.sandbox, list(self.resolution.loaded), self.sandbox.share, workspace
        )
        if placed and self.sync is not None:
            await asyncio.to_thread(self.sync.sync, placed)

    async def start_sync(self, workspace: Path) -> None:
        from sandkit.sync.engine import SyncEngine

        if not workspace.is_dir():
            raise SandkitError(f"the workspace {workspace} is gone")
        owners: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)
        if os.geteuid() == 0:  # files in the share belong to the guest's agent user
            st = workspace.stat()
            owners = (1000, 1000), (st.st_uid, st.st_gid)
        self.sync = SyncEngine(
            workspace,
            self.sandbox.share,
            self.sandbox.dir / "sync",
            share_owner=owners[0],
            host_owner=owners[1],
            protected=protected_paths(workspace, self.config.kits),
        )
        self.sync_loop = asyncio.get_running_loop()
        self.sync.listeners.append(self.on_sync_event)
        sync = self.sync
        await self.handing_back(lambda: asyncio.to_thread(sync.sync))
        self.save(sync=self.sync.status)
        self.sync_task = spawn(self.handing_back(lambda: sync.run(self.sync_stop)), "sync")

    def on_sync_event(self, event: str, data: dict[str, Any]) -> None:
        """Called from the sync thread (or the loop): state to disk, holds to watchers."""
        if event == "status":
            self.save(sync=data["status"])
        else:
            log.info("sync %s %s", event, data)
        if event in ("deletions-held", "protected-held") and self.sync_loop is not None:
            held = {"event": "sync-held", "kind": event, "paths": list(data.get("paths", []))}
            self.sync_loop.call_soon_threadsafe(self._tell_watchers, held)

    def _tell_watchers(self, event: dict[str, Any]) -> None:
        for queue in self.sync_watchers:
            queue.put_nowait(event)

    async def make_proxy(
        self, listener: socket.socket, resolution: Resolution | None = None
    ) -> EgressProxy:
        from sandkit.net.proxy import EgressProxy

        proxy = EgressProxy(await self.proxy_settings(resolution))
        await proxy.start(sock=listener)
        return proxy

    @staticmethod
    def resolve(config: Config) -> Resolution:
        from sandkit.kits import resolve  # heavy imports: after QEMU is on its way

        return resolve(config.agent, config.kits, config.kit_args, defaults=config.arg_defaults)

    async def proxy_settings(self, resolution: Resolution | None = None) -> ProxySettings:
        """The composed kits' policy and credentials, and what the guest sees of them."""
        from sandkit.net.actions import DefaultPolicy
        from sandkit.net.service import build_settings

        c = self.config
        if resolution is None:
            resolution = await asyncio.to_thread(self.resolve, c)
        self.resolution = resolution
        settings, bound = build_settings(
            resolution.sandbox,
            default=DefaultPolicy(c.default_policy),
            log_path=self.sandbox.dir / "decisions.jsonl",
            pins=c.resolve,
            upstream_ca=Path(c.upstream_ca) if c.upstream_ca else None,
            sandbox=c.name,
            registry_hosts=registry_hosts(c.arg_defaults),
        )
        # Logins that were in the host's registry URLs: the proxy sends them (the guest got
        # the URLs without them), through the same injector as the kits' credentials.
        logins = registry_credentials(c.arg_defaults)
        if logins:
            from sandkit.net.inject import BoundCredential, Injector
            from sandkit.net.secrets import placeholder

            bound = [*bound, *(BoundCredential(k, v, placeholder(k.service)) for k, v in logins)]
            settings.injector = Injector(bound)
        # What every process in the guest sees: the kits' variables, placeholders where the
        # real secrets would be, and the sandbox CA for every TLS stack that has its own.
        env = dict(resolution.sandbox.environment)
        env.update(
            {
                b.credential.env: b.placeholder
                for b in bound
                if b.credential.env and b.credential.proxy_managed
            }
        )
        env.update(dict.fromkeys(CA_BUNDLE_VARS, GUEST_CA_BUNDLE))
        env["NODE_EXTRA_CA_CERTS"] = GUEST_CA
        self.guest_env = env
        settings.ask, settings.ask_timeout = self.approvals.ask, c.ask_timeout
        for host, action in self.load_approvals().items():  # "allow for this sandbox"
            settings.policy = settings.policy.with_approval(host, Action(action))
        self.ca_pem = settings.ca.cert_path.read_bytes()
        if c.upstream_ca:
            # Only its certificates: the file goes into the guest's trust store.
            self.ca_pem += b"\n" + read_certificates(Path(c.upstream_ca))
        if c.host_cas:
            self.ca_pem += b"\n" + local_cas()
        return settings

    async def apply_kits(self, first_boot_only: bool = False) -> None:
        from sandkit.sandbox.kitapply import apply_kits

        assert self.machine is not None and self.machine.channel is not None
        assert self.resolution is not None
        await apply_kits(
            self.machine.channel,
            self.resolution.sandbox,
            list(self.resolution.loaded),
            self.guest_env,
            self.config.workspace,
            self.sandbox.share if self.config.workspace else None,
            set_phase=self.set_phase,
            first_boot_only=first_boot_only,
        )

    # -- warm pool ------------------------------------------------------------------------
    async def adopt(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Become sandbox ``name``: take its directory name and config, fill the share
        from its workspace, resume, make the guest unique, then the same kit application
        as a cold boot."""
        from sandkit.sandbox.lifecycle import MEMBER_TAKEN, profile, profile_of
        from sandkit.sandbox.store import check_name

        if self.state.state != "pooled" or self.stopping:
            raise SandkitError(MEMBER_TAKEN)
        prepared = self.config.pool_prepared
        if prepared and profile(self.config) != profile_of(config):
            raise SandkitError(f"{MEMBER_TAKEN}: prepared for other kits")
        self.state.state = "adopting"  # before any await: one adopter only
        started = time.monotonic()
        member = self.sandbox.name
        try:  # everything that can refuse, before the folder is renamed
            target = self.sandbox.dir.parent / check_name(name)
            new_config = Config(**{**config, "name": name, "pool_shape": None})
            if target.exists():
                raise FileExistsError(17, "a sandbox has that name")
        except (OSError, TypeError, SandkitError) as exc:
            self.state.state = "pooled"
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise SandkitError(f"cannot adopt this pool member as '{name}': {why}") from None
        try:  # the kits (the caller has not checked them): their errors are the user's
            resolution = await asyncio.to_thread(self.resolve, new_config)
            if self.stopping:
                raise SandkitError(MEMBER_TAKEN)
            self.sandbox.dir.rename(target)
        except BaseException as exc:
            if not self.stopping:
                self.state.state = "pooled"  # still waiting for a sandbox, untouched
            if isinstance(exc, OSError):
                raise SandkitError(
                    f"cannot adopt this pool member as '{name}': {exc.strerror}"
                ) from None
            raise
        old_control = self.sandbox.control
        self.sandbox = Sandbox(target.parent, name)
        self.config = new_config
        try:
            self.sandbox.save_config(self.config)
            self.save(
                state="booting", adopted_from=member, adopted_prepared=prepared, started=time.time()
            )
            if self.sandbox.control != old_control:  # the socket moved with the folder, or not
                self.sandbox.sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.servers.append(
                    await asyncio.start_unix_server(
                        self.client, str(self.sandbox.control), limit=1 << 22
                    )
                )
            await self._adopt(resolution)
        except Exception as exc:
            if not isinstance(exc, SandkitError):
                log.exception("adoption failed")
            message = str(exc) if isinstance(exc, SandkitError) else f"internal error: {exc!r}"
            self.save(state="crashed", error=message)
            spawn(self._end_after_failure(), "end")
            raise SandkitError(f"sandbox '{name}' did not start: {message}") from None
        self.save(state="running")
        log.info("adopted %s as %s in %.2f s", member, name, time.monotonic() - started)
        return {"member": member, "seconds": round(time.monotonic() - started, 3)}

    async def _end_after_failure(self) -> None:
        self.stopping = True
        await self.cleanup()
        self.done.set()

    async def _adopt(self, resolution: Resolution) -> None:
        """The guest resumes and is made unique while the host composes the kits and fills
        the share; the kits are applied once both are done."""
        assert self.machine is not None and self.machine.qmp is not None
        assert self.machine.channel is not None and self.proxy is not None
        from sandkit.vm.machine import MachinePaths

        c = self.config
        steps: list[str] = []
        mark = time.monotonic()

        def lap(what: str) -> None:
            nonlocal mark
            steps.append(f"{what} {1000 * (time.monotonic() - mark):.0f} ms")
            mark = time.monotonic()

        self.machine.paths = MachinePaths(self.sandbox.dir, self.machine.paths.sockets)
        await self.machine.qmp.execute("cont")
        guest = spawn(self.make_unique(), "make-unique")
        try:
            old = self.proxy.s
            self.proxy.s = await self.proxy_settings(resolution)
            old.log.close()
            old.ca.close()
            lap("kits and proxy")
            if c.workspace:
                await self.start_sync(Path(c.workspace))
                await self.place_workspace_files(Path(c.workspace))
                lap("sync")
        finally:
            await guest  # its failure, if any, is the one to report
        lap("guest made unique")
        await self.trust_ca()  # this sandbox's CAs (an upstream CA) in GUEST_CA and the bundle
        await self.apply_kits()
        lap("kits applied")
        log.info("adoption steps: %s", ", ".join(steps))

    async def make_unique(self) -> None:
        """A restored VM was booted before anyone knew its name: give it this sandbox's
        hostname, a fresh machine-id, the host's clock, host entropy mixed into its RNG
        (then reseeded), and the workspace bound at its path."""
        import secrets

        assert self.machine is not None and self.machine.channel is not None
        c = self.config
        try:
            await self.machine.channel.adopt(
                hostname=c.name,
                machine_id=secrets.token_hex(16),
                time=time.time(),
                seed=secrets.token_hex(64),
                workspace=c.workspace,
            )
        except Exception as exc:
            raise SandkitError(f"cannot make the restored VM this sandbox's: {exc}") from None

    def set_phase(self, phase: Phase) -> None:
        """v3 kits' install-phase rules hold only while install commands run."""
        if self.proxy is not None:
            self.proxy.s.phase = phase

    # -- approvals --------------------------------------------------------------------
    def load_approvals(self) -> dict[str, str]:
        try:
            data = json.loads((self.sandbox.dir / "approvals.json").read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        approvals = {}
        for key, value in data.items():
            try:  # a file written by an older sandkit may hold wildcards: they are dropped
                host = exact_host(str(key), port=True)
            except ValueError:
                log.warning("ignoring the remembered approval %r: not one host", key)
                continue
            if value in ("allow", "deny"):
                approvals[host] = str(value)
        return approvals

    def answer(self, host: str, action: Action, remember: bool) -> dict[str, Any]:
        host = host.strip().lower()
        if not host or any(c in host for c in "/ @"):
            raise SandkitError(f"'{host}' is not a host name (e.g. api.example.com)")
        if remember:  # checked before anything is let through: one host, never a wildcard
            try:
                host = exact_host(host, port=True)
            except ValueError as exc:
                raise SandkitError(str(exc)) from None
        answered = self.approvals.answer(action, host=host)
        if remember:
            if self.proxy is not None:
                self.proxy.s.policy = self.proxy.s.policy.with_approval(host, action)
            stored = {**self.load_approvals(), host: str(action)}
            path = self.sandbox.dir / "approvals.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(stored, indent=2, sort_keys=True))
            tmp.replace(path)
        return {"answered": len(answered), "remembered": remember}

    async def trust_ca(self) -> None:
        """Install the sandbox CA (and an upstream CA) in the guest's trust store: once per
        disk, recorded by a marker named after the certificates, so the bundle (large)
        never travels over the channel."""
        assert self.machine is not None and self.machine.channel is not None
        channel = self.machine.channel
        pem = self.ca_pem
        marker = f"/var/lib/sandkit/ca-{hashlib.sha256(pem).hexdigest()[:16]}"
        try:
            await channel.write_file(GUEST_CA, pem)
            if await channel.read_file(marker) is None:
                await channel.write_file(GUEST_CA_BUNDLE, b"\n" + pem, append=True)
                await channel.write_file(marker, b"")
        except SandkitError as exc:
            raise SandkitError(f"cannot install the sandbox CA in the guest: {exc}") from None

    async def watch(self) -> None:
        assert self.machine is not None
        code = await self.machine.wait()
        if not self.stopping:
            console = tail(self.machine.paths.console)
            self.save(
                state="crashed",
                qemu_pid=None,
                error=f"QEMU exited unexpectedly (status {code})\n--- guest console (last lines) ---\n{console}",
            )
            await self.cleanup()
            self.done.set()

    async def stop(self) -> None:
        if self.stopping:
            return
        pooled = self.state.state == "pooled"
        self.stopping = True
        self.save(state="stopping")
        if self.machine is not None:
            if pooled:  # paused, nothing in it to lose: no graceful shutdown to wait for
                await self.machine.kill()
            else:
                await self.machine.shutdown()
        await self.cleanup()
        self.save(state="stopped", qemu_pid=None, error=None)
        self.done.set()

    async def cleanup(self) -> None:
        if self.sync is not None:
            self.sync_stop.set()
            if self.sync_task is not None:  # let the watcher finish its batch
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.sync_task, 10)
            self.sync.close()
            self.sync = None
        if self.machine is not None:
            await self.machine.kill()
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy.s.log.close()
            self.proxy.s.ca.close()
            self.proxy = None
            self.proxy_socket.unlink(missing_ok=True)

    async def hand_back(self, paths: list[str]) -> None:
        """Run as anyone but root, what the guest's root made in the share belongs to one
        of the user's subordinate ids on the host (vm/userns.py), which sync, running as
        the user, can read but not change. Before sync answers for held paths, the guest
        gives them, and the folders they are in, back to its agent: the user, on the host."""
        channel = self.machine.channel if self.machine is not None else None
        if os.geteuid() == 0 or not paths or channel is None:
            return
        targets: set[str] = set()
        for rel in paths:
            parts = rel.split("/")
            targets.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        # In the guest, on its own share: nothing it could not do itself. A path already
        # gone is no error worth more than chown's message.
        share = "/run/sandkit/share"
        await channel.run(
            ["chown", "-h", "1000:1000", "--", *(f"{share}/{t}" for t in sorted(targets))]
        )

    async def handing_back(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run a sync step; run as anyone but root, if it stops on a file or folder of
        the guest's root in the share (see hand_back), the guest gives every such entry of
        the workspace to its agent, and the step runs again: sync never stops on them."""
        for tries in range(10):  # a cause that is not the guest's root: stop all the same
            try:
                await step()
                return
            except PermissionError as exc:
                channel = self.machine.channel if self.machine is not None else None
                if os.geteuid() == 0 or channel is None or tries == 9:
                    raise
                find = "find /run/sandkit/share -xdev ! -user 1000 -print -exec chown -h 1000:1000 {} +"
                done = await channel.run(["sh", "-c", find])
                if done.exit_status != 0 or not done.stdout.strip():
                    raise  # nothing of the guest's root: not the cause
                log.info("sync: %s; the guest's root's files in the share go to its agent", exc)
                if self.stopping:  # after the await, with nothing between it and clear()
                    return
                self.sync_stop.clear()  # set by the sync's run() as it ended

    # -- control socket -------------------------------------------------------------------
    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        executions: dict[int, Execution] = {}
        watching: list[asyncio.Task[None]] = []
        forwarding: set[asyncio.Task[None]] = set()
        lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> None:
            async with lock:
                writer.write(encode(message))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        async def forward(execution: Execution) -> None:
            # Backpressure end to end: next() acknowledges output to the guest, and is not
            # called again until this client's socket took the last event (send drains), so
            # a slow client pauses the process in the guest; nothing queues up here.
            while True:
                event = await execution.next()
                if event["op"] == "output":
                    await send(
                        {
                            "event": "output",
                            "exec": execution.id,
                            "stream": event["stream"],
                            "data": event["data"],
                        }
                    )
                elif event["op"] == "exit":
                    await send(
                        {
                            "event": "exit",
                            "exec": execution.id,
                            **{k: event[k] for k in ("code", "signal") if k in event},
                        }
                    )
                    executions.pop(execution.id, None)
                    return

        async def watch() -> None:  # held requests and changes, while this client is here
            with self.approvals.watch() as queue:
                self.sync_watchers.add(queue)
                try:
                    while True:
                        await send(await queue.get())
                finally:
                    self.sync_watchers.discard(queue)

        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if request.get("method") == "watch":
                        if not watching:
                            watching.append(spawn(watch(), "watch-approvals"))
                        await send({"id": request.get("id"), "result": {}})
                        continue
                    result = await self.call(
                        request.get("method"), request.get("params") or {}, executions
                    )
                except (ValueError, KeyError, TypeError, SandkitError) as exc:
                    await send(
                        {
                            "id": request.get("id") if isinstance(request, dict) else None,
                            "error": str(exc),
                        }
                    )
                    continue
                if isinstance(result, Execution):
                    executions[result.id] = result
                    await send({"id": request.get("id"), "result": {"exec": result.id}})
                    task = spawn(forward(result), f"forward-{result.id}")
                    forwarding.add(task)
                    task.add_done_callback(forwarding.discard)
                else:
                    await send({"id": request.get("id"), "result": result})
        except ConnectionError:
            pass
        finally:
            # No one reads this output any more: unacknowledged, it pauses in the guest.
            for task in [*watching, *forwarding]:
                task.cancel()
            for execution in executions.values():  # the client left: end what it started
                with contextlib.suppress(Exception):
                    await execution.signal(signal.SIGHUP)
            writer.close()

    async def call(
        self, method: str, params: dict[str, Any], executions: dict[int, Execution]
    ) -> Any:
        machine = self.machine
        if method == "ping":
            return {}
        if method == "status":
            return {"state": self.state.state, "qemu_pid": self.state.qemu_pid}
        if method == "stop":
            spawn(self.stop(), "stop")
            return {}
        if method in ("sync-approve", "sync-reject", "sync-status"):
            if self.sync is None:
                raise SandkitError("this sandbox has no workspace to sync")
            if method == "sync-status":
                return {
                    "status": self.sync.status,
                    "held": sorted(self.sync.pending),
                    "details": self.sync.held(),
                    "refused_links": dict(self.sync.refused),
                    "conflicts": self.sync.conflicts,
                }
            await self.hand_back(sorted(self.sync.pending))
            count = await asyncio.to_thread(
                self.sync.approve if method == "sync-approve" else self.sync.reject
            )
            self.save(sync=self.sync.status)
            return {"count": count}
        if method in ("approve", "deny"):
            action = Action.ALLOW if method == "approve" else Action.DENY
            return self.answer(str(params.get("host", "")), action, bool(params.get("remember")))
        if method == "pending":
            return {"held": [h.describe() for h in self.approvals.held.values()]}
        if method == "adopt":
            return await self.adopt(str(params["name"]), dict(params["config"]))
        if method == "agent-argv":  # `run AGENT -- ARGS`, from the kits this sandbox runs
            from sandkit.sandbox.agent_command import agent_argv

            if self.resolution is None:
                raise SandkitError("the sandbox is not running")
            extra = [str(a) for a in params.get("extra") or []]
            return {
                "argv": agent_argv(self.resolution.sandbox, extra, bool(params.get("interactive")))
            }
        if machine is None or machine.channel is None:
            raise SandkitError("the sandbox is not running")
        if method == "dump-memory":  # for audits: is a secret anywhere in the guest's RAM?
            target = self.sandbox.dir / "memory.dump"
            assert machine.qmp is not None
            await machine.qmp.execute(
                "dump-guest-memory", {"paging": False, "protocol": f"file:{target}"}
            )
            return {"path": str(target)}
        if method == "guest-ping":  # a round trip through the guest agent's channel
            await machine.channel.ping()
            return {}
        if method == "exec":
            return await machine.channel.exec(
                params["argv"],
                env={**self.guest_env, **(params.get("env") or {})},
                cwd=params.get("cwd"),
                user=str(params.get("user") or "root"),
                pty=bool(params.get("pty")),
                rows=int(params.get("rows", 24)),
                cols=int(params.get("cols", 80)),
                stdin=bool(params.get("stdin")),
            )
        execution = executions.get(int(params["exec"]))
        if execution is None:
            raise SandkitError(f"no running exec {params['exec']}")
        if method == "stdin":
            await execution.stdin(base64.b64decode(params.get("data", "")), bool(params.get("eof")))
        elif method == "resize":
            await execution.resize(int(params["rows"]), int(params["cols"]))
        elif method == "signal":
            await execution.signal(int(params["signal"]))
        else:
            raise SandkitError(f"unknown method '{method}'")
        return {}


async def main(name: str, image: str | None = None) -> int:
    sandbox = Store().get(name)
    supervisor = Supervisor(sandbox, Path(image) if image else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: spawn(supervisor.stop(), "stop-on-signal"))
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # outlive the terminal that started us
    return await supervisor.run()


def protected_paths(workspace: Path, kits: list[str]) -> Protected:
    """The user's protected paths, plus the kit folders inside this workspace that the
    sandbox uses: an agent that rewrites its own kit would widen its next start."""
    from sandkit.paths import config_dir
    from sandkit.sync.protect import Protected

    extra = []
    for kit in kits:
        path = Path(kit)
        if not path.is_absolute():
            continue
        if path.is_relative_to(workspace):
            rel = path.relative_to(workspace).as_posix()
            extra.append(f"/{rel}" if path.suffix in (".zip", ".yaml", ".yml") else f"/{rel}/**")
    return Protected.for_user(config_dir(), extra)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
    except VMError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(1)
