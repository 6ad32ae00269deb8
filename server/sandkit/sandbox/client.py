"""The client side of a supervisor's control socket (used by the CLI and the editor).

    async with await SupervisorClient.connect(sandbox.control) as client:
        status = await client.status()

One method per control method, returning the result models of sandbox/protocol.py; an
error reply raises :class:`SupervisorError` with its code. Exec and session requests return
the stream handles of sandbox/remote.py. Leaving the ``async with`` closes the connection
and stops its reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from sandkit.rpc import Connection, ConnectionLost, open_unix
from sandkit.sandbox.protocol import (
    AdoptParams,
    AdoptResult,
    AgentArgvParams,
    AgentArgvResult,
    AnswerParams,
    AnswerResult,
    CountResult,
    CredentialsChangedParams,
    CredentialsChangedResult,
    DumpMemoryResult,
    EmptyResult,
    ErrorCode,
    ExecParams,
    ExecResult,
    Identity,
    Params,
    PendingResult,
    PingResult,
    PortsResult,
    PublishParams,
    Result,
    SessionAttached,
    SessionAttachParams,
    SessionInfo,
    SessionParams,
    SessionsResult,
    SessionStartParams,
    StatusResult,
    SyncStatusResult,
    UnpublishParams,
    error_of,
)
from sandkit.sandbox.remote import RemoteExec, RemoteSession, SupervisorError, checked_params
from sandkit.sandbox.store import SandboxError

R = TypeVar("R", bound=Result)


def _key(message: dict[str, Any]) -> Hashable | None:
    """Replies go to their request, exec and session events to their exec or session;
    other events (approvals, held sync changes, new guest listeners) are unsolicited."""
    if "event" in message:
        if message.get("exec") is not None:
            return ("exec", message["exec"])
        if isinstance(message.get("session"), str):
            return ("session", message["session"])
        return None
    return ("reply", message.get("id"))


def _exit(message: dict[str, Any]) -> bool:
    return message.get("event") in ("exit", "session-exit", "session-detached")


def _stream_event(message: dict[str, Any]) -> bool:
    return "event" in message and ("exec" in message or "session" in message)


class SupervisorClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connection = Connection(reader, writer, key=_key, final=_exit, early=_stream_event)
        self._ids = 0
        self.connection.start()

    @classmethod
    async def connect(cls, socket: Path) -> SupervisorClient:
        try:
            reader, writer = await open_unix(str(socket))
        except (FileNotFoundError, ConnectionRefusedError):
            raise SandboxError("the sandbox's supervisor is not answering") from None
        return cls(reader, writer)

    async def __aenter__(self) -> SupervisorClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def close(self) -> None:
        """Close the connection now (and stop its reader): what the supervisor started
        for this client is hung up."""
        self.connection.close()

    async def aclose(self) -> None:
        await self.connection.aclose()

    # -- the transport ----------------------------------------------------------------------
    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """One request, untyped: the reply's ``result`` as JSON. SupervisorError for an
        error reply (its code, or ``failed`` from a supervisor that sent a bare string)."""
        self._ids += 1
        rid = self._ids
        request = {"id": rid, "method": method, "params": dict(params or {})}
        try:
            reply = await self.connection.request(("reply", rid), request)
        except ConnectionLost:
            raise ConnectionLost("the supervisor closed the connection") from None
        if "error" in reply:
            body = error_of(reply["error"])
            raise SupervisorError(body.code, body.message)
        return reply.get("result")

    async def request(self, method: str, params: Params | None, result: type[R]) -> R:
        """One request, typed both ways."""
        sent = params.model_dump(mode="json") if params is not None else None
        raw = await self.call(method, sent)
        try:
            return result.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            raise SupervisorError(
                ErrorCode.FOREIGN_VERSION,
                f"the supervisor's answer to {method} is not what this sandkit reads (is it "
                f"another version? restart the sandbox): {exc.error_count()} wrong field(s)",
            ) from None

    # -- methods ------------------------------------------------------------------------------
    async def ping(self) -> PingResult:
        return await self.request("ping", None, PingResult)

    async def status(self) -> StatusResult:
        return await self.request("status", None, StatusResult)

    async def guest_ping(self) -> None:
        """A round trip through the guest agent."""
        await self.request("guest-ping", None, EmptyResult)

    async def dump_memory(self) -> DumpMemoryResult:
        return await self.request("dump-memory", None, DumpMemoryResult)

    async def credentials_changed(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Tell the supervisor the host's secrets changed (and hand over the host variables
        the kits name); the services that have a value now."""
        params = CredentialsChangedParams(environ=dict(environ) if environ is not None else None)
        reply = await self.request("credentials-changed", params, CredentialsChangedResult)
        return reply.services

    async def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str = "root",
        pty: bool = False,
        rows: int = 24,
        cols: int = 80,
        stdin: bool = False,
    ) -> RemoteExec:
        params = checked_params(
            ExecParams,
            argv=list(argv),
            env=dict(env or {}),
            cwd=cwd,
            user=user,
            pty=pty,
            rows=rows,
            cols=cols,
            stdin=stdin,
        )
        started = await self.request("exec", params, ExecResult)
        # Its events may have come before this reply: they wait in its inbox.
        return RemoteExec(self, started.exec)

    async def stop(self) -> None:
        """The supervisor answers, then stops the sandbox."""
        await self.request("stop", None, EmptyResult)

    async def sync_status(self) -> SyncStatusResult:
        return await self.request("sync-status", None, SyncStatusResult)

    async def sync_approve(self) -> CountResult:
        return await self.request("sync-approve", None, CountResult)

    async def sync_reject(self) -> CountResult:
        return await self.request("sync-reject", None, CountResult)

    async def watch(self) -> None:
        """From now on this connection gets approval and held-sync events (:meth:`events`)."""
        await self.request("watch", None, EmptyResult)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The events after :meth:`watch`, until the connection ends."""
        while True:
            try:
                yield await self.connection.events.get()
            except ConnectionLost:
                return

    async def approve(self, host: str, remember: bool = False) -> AnswerResult:
        return await self.request(
            "approve", checked_params(AnswerParams, host=host, remember=remember), AnswerResult
        )

    async def deny(self, host: str, remember: bool = False) -> AnswerResult:
        return await self.request(
            "deny", checked_params(AnswerParams, host=host, remember=remember), AnswerResult
        )

    async def pending(self) -> PendingResult:
        return await self.request("pending", None, PendingResult)

    async def adopt(
        self,
        name: str,
        config: Mapping[str, Any],
        identity: Identity | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AdoptResult:
        params = checked_params(
            AdoptParams,
            name=name,
            config=dict(config),
            identity=identity,
            environ=dict(environ) if environ is not None else None,
        )
        return await self.request("adopt", params, AdoptResult)

    async def agent_argv(
        self,
        extra: Sequence[str],
        interactive: bool,
        verb: str | None = None,
        prompt: str | None = None,
        session_id: str | None = None,
    ) -> AgentArgvResult:
        """The agent's command line from the kits the sandbox runs (with a session verb:
        agent-sessions@1's), so every client launches the agent by the supervisor's rule."""
        params = checked_params(
            AgentArgvParams,
            extra=list(extra),
            interactive=interactive,
            verb=verb,
            prompt=prompt,
            session_id=session_id,
        )
        return await self.request("agent-argv", params, AgentArgvResult)

    # -- sessions -----------------------------------------------------------------------------
    async def sessions(self) -> list[SessionInfo]:
        return (await self.request("sessions", None, SessionsResult)).sessions

    async def start_session(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str = "agent",
        pty: bool = True,
        rows: int = 24,
        cols: int = 80,
        attach: bool = True,
    ) -> RemoteSession:
        """A program the supervisor owns; attached unless ``attach`` is False (exec -d)."""
        params = checked_params(
            SessionStartParams,
            name=name,
            argv=list(argv),
            env=dict(env or {}),
            cwd=cwd,
            user=user,
            pty=pty,
            rows=rows,
            cols=cols,
            attach=attach,
        )
        return RemoteSession(self, await self.request("session-start", params, SessionAttached))

    async def attach(
        self, session: str, rows: int = 24, cols: int = 80, interactive: bool = True
    ) -> RemoteSession:
        """The session's screen so far, then its output; ``interactive=False`` follows the
        output without taking the terminal's size (logs -f)."""
        params = checked_params(
            SessionAttachParams, session=session, rows=rows, cols=cols, interactive=interactive
        )
        return RemoteSession(self, await self.request("session-attach", params, SessionAttached))

    async def stop_session(self, session: str) -> None:
        """SIGHUP, then SIGKILL a few seconds later if it is still running."""
        await self.request(
            "session-stop", checked_params(SessionParams, session=session), EmptyResult
        )

    # -- ports --------------------------------------------------------------------------------
    async def ports(self) -> PortsResult:
        return await self.request("ports", None, PortsResult)

    async def publish(self, spec: str) -> PortsResult:
        return await self.request("publish", checked_params(PublishParams, spec=spec), PortsResult)

    async def unpublish(self, spec: str) -> PortsResult:
        return await self.request(
            "unpublish", checked_params(UnpublishParams, spec=spec), PortsResult
        )
