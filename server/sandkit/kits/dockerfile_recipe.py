"""What kits/dockerfile.py reads a Dockerfile into: the steps sandkit replays (RUN, COPY,
WORKDIR) and the image config a v3 workload's agent runs with (ENV, USER, WORKDIR,
ENTRYPOINT/CMD), and the error that names the line it cannot replay."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SHELL = ("/bin/sh", "-c")


class DockerfileError(ValueError):
    """A line sandkit cannot replay; the message names the file, the line and a fix."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file, self.line, self.reason = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Run:
    """RUN: ``argv`` (exec form) or ``script`` (shell form, for ``shell``), with the ARG
    and ENV values in force, as ``user`` in ``workdir`` (None: the image's default)."""

    line: int
    user: str
    workdir: str | None
    env: tuple[tuple[str, str], ...]
    argv: tuple[str, ...] | None = None
    script: str | None = None
    shell: tuple[str, ...] = DEFAULT_SHELL


@dataclass(frozen=True)
class Copy:
    """COPY of ``source`` (relative to the kit folder, checked not to leave it: a file, a
    folder whose contents are copied, "" for the whole kit, or a wildcard pattern) to
    ``dest``, an absolute path; ``into``: ``dest`` is a folder (it ended with '/', or the
    instruction names several sources). Which files that is, only the kit folder knows:
    kits/recipe.py lists them."""

    line: int
    source: str
    dest: str
    chown: str | None = None
    chmod: int | None = None
    into: bool = False


@dataclass(frozen=True)
class Workdir:
    """WORKDIR: Docker creates the folder (owned by the user in force)."""

    line: int
    path: str
    user: str


Step = Run | Copy | Workdir


@dataclass(frozen=True)
class Recipe:
    file: str
    base: str
    base_line: int
    steps: tuple[Step, ...]
    env: dict[str, str]
    user: str | None  # the last USER (None: the base image's)
    workdir: str | None  # the last WORKDIR (None: the base image's)
    entrypoint: tuple[str, ...] | None  # None: the base image's
    cmd: tuple[str, ...] | None  # None: the base image's (reset by an ENTRYPOINT)
    entrypoint_line: int = 0
    warnings: tuple[tuple[int, str], ...] = ()

    def launch(
        self, base_entrypoint: tuple[str, ...], base_cmd: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(entrypoint, cmd) as Docker combines them with the base image's: an
        ENTRYPOINT resets the inherited CMD; a shell-form ENTRYPOINT takes no CMD."""
        entrypoint = self.entrypoint if self.entrypoint is not None else base_entrypoint
        inherited = () if self.entrypoint is not None else base_cmd
        cmd = self.cmd if self.cmd is not None else inherited
        if self.entrypoint is not None and self.entrypoint[:2] == DEFAULT_SHELL:
            cmd = ()
        return entrypoint, cmd
