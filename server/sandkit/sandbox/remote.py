"""What a supervisor's client hands back besides results: the error of a refused request,
and the handles of the streams a request started (an exec bound to this client, an
attachment to a session the supervisor owns). Requests' params are checked here, before
anything is sent, so that a handle's requests and the client's are checked alike."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from sandkit.logs import logger
from sandkit.rpc import ConnectionLost
from sandkit.sandbox.protocol import (
    EmptyResult,
    ErrorCode,
    ExitEvent,
    OutputEvent,
    Params,
    ResizeParams,
    SessionAttached,
    SessionDetachedEvent,
    SessionExitEvent,
    SessionInputParams,
    SessionOutputEvent,
    SessionParams,
    SessionResizeParams,
    SignalParams,
    StdinParams,
)
from sandkit.sandbox.wire import SupervisorError as SupervisorError

if TYPE_CHECKING:  # the client makes the handles; they only call it back
    from sandkit.sandbox.client import SupervisorClient

P = TypeVar("P", bound=Params)
log = logger(__name__)


def checked_params(model: type[P], **fields: Any) -> P:
    """A request's params, checked here: a value the supervisor would refuse is the
    caller's error (bad-request) before anything is sent."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SupervisorError(ErrorCode.BAD_REQUEST, problems) from None


class RemoteExec:
    """A process started in the sandbox. Its events are taken with :meth:`next`; until
    they are, the supervisor (and the process in the guest) waits for this client."""

    def __init__(self, client: SupervisorClient, exec_id: int) -> None:
        self.client, self.id = client, exec_id
        self._inbox = client.connection.open(("exec", exec_id))

    async def next(self) -> OutputEvent | ExitEvent:
        """The next output, or the exit (the last event). ConnectionLost if the
        connection to the supervisor ends first."""
        while True:
            try:
                message = await self._inbox.get()
            except ConnectionLost:
                raise ConnectionLost("lost the connection to the sandbox") from None
            try:
                if message.get("event") == "exit":
                    return ExitEvent.model_validate(message)
                if message.get("event") == "output":
                    return OutputEvent.model_validate(message)
            except ValidationError as exc:
                log.warning("skipping a malformed exec event: %s", exc)

    async def stdin(self, data: bytes = b"", eof: bool = False) -> None:
        params = checked_params(
            StdinParams, exec=self.id, data=base64.b64encode(data).decode(), eof=eof
        )
        await self.client.request("stdin", params, EmptyResult)

    async def resize(self, rows: int, cols: int) -> None:
        await self.client.request(
            "resize", checked_params(ResizeParams, exec=self.id, rows=rows, cols=cols), EmptyResult
        )

    async def signal(self, number: int) -> None:
        await self.client.request(
            "signal", checked_params(SignalParams, exec=self.id, signal=number), EmptyResult
        )


SessionEvent = SessionOutputEvent | SessionExitEvent | SessionDetachedEvent


class RemoteSession:
    """This client's attachment to a session: the screen at attach time, then its events.
    Detaching (or closing the connection) leaves the session running."""

    def __init__(self, client: SupervisorClient, attached: SessionAttached) -> None:
        self.client, self.info = client, attached.session
        self.name = attached.session.name
        self.screen = base64.b64decode(attached.screen)
        self._inbox = client.connection.open(("session", self.name))

    async def next(self) -> SessionEvent:
        """The next output, or the end: the session's exit, or this client detached."""
        while True:
            try:
                message = await self._inbox.get()
            except ConnectionLost:
                raise ConnectionLost("lost the connection to the sandbox") from None
            kind = message.get("event")
            try:
                if kind == "session-output":
                    return SessionOutputEvent.model_validate(message)
                if kind == "session-exit":
                    return SessionExitEvent.model_validate(message)
                if kind == "session-detached":
                    return SessionDetachedEvent.model_validate(message)
            except ValidationError as exc:
                log.warning("skipping a malformed session event: %s", exc)

    async def input(self, data: bytes = b"", eof: bool = False) -> None:
        params = checked_params(
            SessionInputParams,
            session=self.name,
            data=base64.b64encode(data).decode(),
            eof=eof,
        )
        await self.client.request("session-input", params, EmptyResult)

    async def resize(self, rows: int, cols: int) -> None:
        params = checked_params(SessionResizeParams, session=self.name, rows=rows, cols=cols)
        await self.client.request("session-resize", params, EmptyResult)

    async def detach(self) -> None:
        await self.client.request(
            "session-detach", checked_params(SessionParams, session=self.name), EmptyResult
        )
        self.client.connection.discard(("session", self.name))

    async def stop(self) -> None:
        await self.client.stop_session(self.name)
