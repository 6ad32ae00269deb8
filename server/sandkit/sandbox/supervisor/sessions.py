"""The supervisor's sessions: a program in the guest that outlives the client that started
it. The supervisor reads its output all the time (the guest never pauses it), keeps the
scrollback (sandbox/sessions.py), and passes each chunk to the attached connections."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
from typing import TYPE_CHECKING

from sandkit.logs import logger
from sandkit.sandbox import protocol as p
from sandkit.sandbox.protocol import ControlError, ErrorCode
from sandkit.sandbox.sessions import Attachment, Session, SessionError, SessionTable

if TYPE_CHECKING:
    from sandkit.sandbox.supervisor.control import Connection
    from sandkit.sandbox.supervisor.process import Supervisor
    from sandkit.vm.channel import Execution

log = logger("sandkit.supervisor")
STOP_GRACE = 5.0  # seconds between SIGHUP and SIGKILL when a session is stopped


def info(session: Session) -> p.SessionInfo:
    return p.SessionInfo.model_validate(session.describe())


class SessionHost:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.table = SessionTable()
        self.executions: dict[str, Execution] = {}

    def get(self, name: str) -> Session:
        try:
            return self.table.get(name)
        except SessionError as exc:
            raise ControlError(ErrorCode.NOT_FOUND, str(exc)) from None

    def _running(self, name: str) -> tuple[Session, Execution]:
        session = self.get(name)
        execution = self.executions.get(name)
        if execution is None or not session.running:
            raise ControlError(
                ErrorCode.WRONG_STATE,
                f"session '{name}' has ended (exit status {session.exit_status})",
            )
        return session, execution

    async def start(self, params: p.SessionStartParams) -> Session:
        from sandkit.sandbox.supervisor.control import channel_of

        session = Session(
            name=params.name or self.table.new_name(),
            argv=list(params.argv),
            user=params.user,
            pty=params.pty,
        )
        try:
            self.table.add(session)  # checks the name before anything starts
        except SessionError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        try:
            execution = await channel_of(self.sup).exec(
                params.argv,
                env={**self.sup.guest_env, **params.env},
                cwd=params.cwd,
                user=params.user,
                pty=params.pty,
                rows=params.rows,
                cols=params.cols,
                stdin=True,
            )
        except BaseException:
            session.exited(None, None)
            self.table.forget(session.name)
            raise
        self.executions[session.name] = execution
        self.sup.spawn(self._pump(session, execution), f"session-{session.name}")
        return session

    async def _pump(self, session: Session, execution: Execution) -> None:
        """Takes every event (which acknowledges the output to the guest) until the end."""
        try:
            while True:
                event = await execution.next()
                if event["op"] == "output":
                    session.output(event["stream"], base64.b64decode(event["data"]))
                elif event["op"] == "exit":
                    session.exited(event.get("code"), event.get("signal"))
                    return
        finally:
            if session.running:  # the supervisor is ending: the VM goes with it
                session.exited(None, signal.SIGKILL)
            self.executions.pop(session.name, None)

    def attach(self, conn: Connection, name: str, rows: int, cols: int, interactive: bool) -> bytes:
        """Attach ``conn``; returns the screen so far. Nothing awaits between taking the
        scrollback and attaching, so no output is lost or shown twice."""
        session = self.get(name)
        screen = session.scrollback.data()
        if not session.running:
            conn.after_reply.append(lambda: conn.spawn(_tell_exit(conn, session), "session-end"))
            return screen
        attachment = session.attach(rows, cols, interactive)
        conn.attachments[name] = attachment
        conn.after_reply.append(
            lambda: conn.spawn(_forward(conn, session, attachment), f"attached-{name}")
        )
        if interactive:
            self.sup.spawn(self._resize(name, rows, cols), f"resize-{name}")
        return screen

    def detach(self, conn: Connection, name: str) -> None:
        attachment = conn.attachments.pop(name, None)
        session = self.table.find(name)
        if attachment is None or session is None:
            return
        size = session.detach(attachment)
        if size is not None and session.running:
            self.sup.spawn(self._resize(name, *size), f"resize-{name}")

    def detach_all(self, conn: Connection) -> None:
        for name in list(conn.attachments):
            self.detach(conn, name)

    async def input(self, name: str, data: bytes, eof: bool) -> None:
        await self._running(name)[1].stdin(data, eof)

    async def resize(self, conn: Connection, name: str, rows: int, cols: int) -> None:
        attachment = conn.attachments.get(name)
        if attachment is not None:
            attachment.rows, attachment.cols = rows, cols
        await self._resize(name, rows, cols)

    async def _resize(self, name: str, rows: int, cols: int) -> None:
        session, execution = self._running(name)
        if session.pty:
            await execution.resize(rows, cols)

    async def stop(self, name: str) -> None:
        session, execution = self._running(name)
        await execution.signal(signal.SIGHUP)
        self.sup.spawn(self._kill_later(session, execution), f"stop-{name}")

    async def _kill_later(self, session: Session, execution: Execution) -> None:
        await asyncio.sleep(STOP_GRACE)
        if session.running:
            with contextlib.suppress(Exception):
                await execution.signal(signal.SIGKILL)


async def _forward(conn: Connection, session: Session, attachment: Attachment) -> None:
    name = session.name
    try:
        while (item := await attachment.queue.get()) is not None:
            stream, data = item
            event = p.SessionOutputEvent(
                session=name,
                stream="stderr" if stream == "stderr" else "stdout",
                data=base64.b64encode(data).decode(),
            )
            await conn.send(event.model_dump())
            attachment.taken(data)
        if attachment.dropped:
            why = "this client fell too far behind; attach again to catch up"
            await conn.send(p.SessionDetachedEvent(session=name, why=why).model_dump())
        elif not session.running:
            await _tell_exit(conn, session)
    finally:
        if conn.attachments.get(name) is attachment:
            del conn.attachments[name]
        session.detach(attachment)


async def _tell_exit(conn: Connection, session: Session) -> None:
    event = p.SessionExitEvent(session=session.name, code=session.code, signal=session.signal)
    await conn.send(event.model_dump())
