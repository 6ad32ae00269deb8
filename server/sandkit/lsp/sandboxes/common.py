"""What the sandbox commands share: argument access, the command decorator that turns user
errors into messages for the editor, $/progress, and the context the modules register
their commands against."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcServerError
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from sandkit.errors import SandkitError
from sandkit.lsp import protocol
from sandkit.sandbox import lifecycle
from sandkit.sandbox.store import Sandbox

if TYPE_CHECKING:
    from sandkit.lsp.sandboxes.terminals import Terminals
    from sandkit.lsp.sandboxes.watch import Watcher
    from sandkit.lsp.server import SandkitServer

T = TypeVar("T")


def params_of(args: tuple[Any, ...]) -> dict[str, Any]:
    first = args[0] if args else {}
    if isinstance(first, dict):
        return first
    return {"name": first} if isinstance(first, str) else {}


def get(params: Any, key: str, default: Any = None) -> Any:
    """Custom notifications arrive as dicts or as pygls' attribute objects."""
    if isinstance(params, dict):
        return params.get(key, default)
    return getattr(params, key, default)


def to_path(value: str) -> Path:
    return Path(to_fs_path(value) or value) if value.startswith("file:") else Path(value)


def _user_error(exc: SandkitError) -> JsonRpcServerError:
    # MissingCredentials (sandbox/request.py) names the services without a value: the
    # editor offers to set them and tries again.
    services = getattr(exc, "services", None)
    if isinstance(services, list) and all(isinstance(s, str) for s in services):
        data: protocol.MissingCredentialsData = {"services": services}
        return JsonRpcServerError(  # type: ignore[no-untyped-call]
            str(exc), protocol.MISSING_CREDENTIALS, data
        )
    return JsonRpcServerError(str(exc), protocol.USER_ERROR)  # type: ignore[no-untyped-call]


def command(
    server: SandkitServer, name: str
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Register a command whose user errors (SandkitError) reach the editor as a message."""

    def decorate(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def run(ls: LanguageServer, *args: Any) -> T:  # pygls reads these hints
            try:
                return await handler(ls, params_of(args))
            except SandkitError as exc:
                raise _user_error(exc) from None
            except KeyError as exc:
                raise JsonRpcServerError(  # type: ignore[no-untyped-call]
                    f"{name}: missing argument {exc}", protocol.USER_ERROR
                ) from None

        server.command(name)(run)
        return handler

    return decorate


class Progress:
    """$/progress for one long step (image build, boot, installs)."""

    def __init__(self, server: SandkitServer, title: str) -> None:
        self.server, self.title = server, title
        self.token = str(uuid.uuid4())
        self.loop = asyncio.get_running_loop()
        self.ready = False

    async def begin(self) -> None:
        try:
            await self.server.work_done_progress.create_async(self.token)
        except Exception:  # a client without progress support: carry on without
            return
        self.ready = True
        self.server.work_done_progress.begin(
            self.token, types.WorkDoneProgressBegin(title=self.title, cancellable=False)
        )

    def report(self, message: str, percentage: int | None = None) -> None:
        if self.ready:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def image_step(self, label: str, index: int, total: int) -> None:  # from a worker thread
        self.loop.call_soon_threadsafe(
            self.report, f"guest image: {label}", 100 * index // max(total, 1)
        )

    def end(self, message: str) -> None:
        if self.ready:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message)
            )


@dataclass
class Context:
    """What the command modules share: the server, its terminals and its watcher."""

    server: SandkitServer
    terminals: Terminals
    watcher: Watcher

    async def started(self, ls: SandkitServer, sandbox: Sandbox) -> None:
        """The sandbox running (booted now if need be, with progress)."""
        progress = Progress(ls, f"Sandbox {sandbox.name}")
        await progress.begin()
        try:
            await lifecycle.start(
                sandbox,
                progress=progress.image_step,
                waiting=lambda state: progress.report(f"{state} (boot and kit installs)"),
            )
        finally:
            progress.end("running")
        self.watcher.scan()  # follow it now, not at the next scan
