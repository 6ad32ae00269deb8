"""The Dockerfile subset v3 workload kits use, read into a typed recipe (pure, no I/O).

A v3 workload's agent command, user, working directory and static environment live in
its image config, which its Dockerfile builds. sandkit builds no image: it reads the
Dockerfile and replays it on its own guest (kits/convert_v3.py maps the recipe). What it
cannot replay faithfully is refused naming the file, the line and what to do instead;
what does not matter in a sandbox (EXPOSE, LABEL, …) is ignored with a warning.

The text is a stranger's: its size, its instruction count and every expansion are
bounded, and nothing here recurses on the input."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sandkit.kits import dockerfile_words as lex
from sandkit.kits.dockerfile_recipe import DEFAULT_SHELL as DEFAULT_SHELL
from sandkit.kits.dockerfile_recipe import Copy as Copy
from sandkit.kits.dockerfile_recipe import DockerfileError as DockerfileError
from sandkit.kits.dockerfile_recipe import Recipe as Recipe
from sandkit.kits.dockerfile_recipe import Run as Run
from sandkit.kits.dockerfile_recipe import Step as Step
from sandkit.kits.dockerfile_recipe import Workdir as Workdir
from sandkit.kits.dockerfile_words import NAME, Fail

MAX_BYTES = 256 << 10
MAX_INSTRUCTIONS = 2048
# sbx builds for the host's platform; kits/convert_v3.py passes the host's architecture.
PLATFORM_ARGS = ("TARGETARCH", "TARGETOS", "TARGETPLATFORM", "TARGETVARIANT")
IGNORED = {
    "EXPOSE": "publish ports with port@1 or `sandkit run -p`",
    "LABEL": "labels describe an image, and sandkit builds none",
    "MAINTAINER": "it is a label",
    "HEALTHCHECK": "sandkit runs no health checks",
    "STOPSIGNAL": "sandkit ends the agent with SIGHUP, then SIGKILL",
}
REFUSED = {
    "VOLUME": "declare the path with the volume@1 capability instead",
    "ONBUILD": "it runs in a later build, and sandkit builds no image: drop it",
}
_HEREDOC = re.compile(r"<<-?\s*([\"']?)[A-Za-z_][A-Za-z0-9_]*\1")
_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")


@dataclass
class _State:
    file: str
    build_args: Mapping[str, str]
    platform: Mapping[str, str]
    global_args: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    shell: tuple[str, ...] = DEFAULT_SHELL
    base: str | None = None
    base_line: int = 0
    steps: list[Step] = field(default_factory=list)
    entrypoint: tuple[str, ...] | None = None
    entrypoint_line: int = 0
    cmd: tuple[str, ...] | None = None
    warnings: list[tuple[int, str]] = field(default_factory=list)
    used_args: set[str] = field(default_factory=set)

    def fail(self, line: int, message: str) -> DockerfileError:
        return DockerfileError(self.file, line, message)

    def at(self, line: int) -> Fail:
        return lambda message: self.fail(line, message)

    def scope(self) -> dict[str, str]:
        """What $VAR expands to: ENV wins over ARG (as in Docker)."""
        return {**(self.args if self.base is not None else self.global_args), **self.env}


def parse(
    text: str,
    file: str,
    build_args: Mapping[str, str] | None = None,
    platform: tuple[str, str] = ("linux", "amd64"),
) -> Recipe:
    """The recipe of ``text`` (a Dockerfile named ``file`` in messages). ``build_args``:
    the kit's buildArg values. Raises DockerfileError on anything it cannot replay."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise DockerfileError(file, 0, f"larger than {MAX_BYTES >> 10} KiB: keep the recipe short")
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise DockerfileError(file, line, "a NUL byte: a Dockerfile is text")
    os_, arch = platform
    st = _State(
        file,
        dict(build_args or {}),
        {
            "TARGETOS": os_,
            "TARGETARCH": arch,
            "TARGETPLATFORM": f"{os_}/{arch}",
            "TARGETVARIANT": "",
        },
    )
    lines = text.replace("\r\n", "\n").split("\n")
    start, escape = _directives(st, lines)
    for count, (line, instruction) in enumerate(_logical_lines(lines, start, escape), 1):
        if count > MAX_INSTRUCTIONS:
            raise st.fail(line, f"more than {MAX_INSTRUCTIONS} instructions: keep the recipe short")
        keyword, *rest = instruction.split(None, 1)
        _dispatch(st, line, keyword.upper(), rest[0].strip() if rest else "", escape)
    if st.base is None:
        raise st.fail(
            0,
            "no FROM: a workload's recipe starts FROM a sandbox template, e.g. "
            "'FROM docker/sandbox-templates:shell'",
        )
    unused = sorted(set(st.build_args) - st.used_args)
    if unused:
        st.warnings.append(
            (0, f"build arg(s) {', '.join(unused)} given by the kit but declared by no ARG")
        )
    return Recipe(
        file=file,
        base=st.base,
        base_line=st.base_line,
        steps=tuple(st.steps),
        env=dict(st.env),
        user=st.user,
        workdir=st.workdir,
        entrypoint=st.entrypoint,
        cmd=st.cmd,
        entrypoint_line=st.entrypoint_line,
        warnings=tuple(st.warnings),
    )


def _directives(st: _State, lines: list[str]) -> tuple[int, str]:
    """Parser directives ('# name=value' lines before anything else): the index of the
    first line after them, and the escape character."""
    escape = "\\"
    start = 0
    while start < len(lines):
        match = _DIRECTIVE.fullmatch(lines[start].strip())
        if not match:
            break
        name, value = match[1].lower(), match[2]
        if name == "escape":
            if value not in ("\\", "`"):
                raise st.fail(start + 1, f"escape '{value}': the escape character is \\ or `")
            escape = value
        elif name == "syntax" and not value.startswith(
            ("docker/dockerfile", "docker.io/docker/dockerfile")
        ):
            st.warnings.append(
                (start + 1, f"syntax '{value}' is not used: sandkit reads the Dockerfile itself")
            )
        start += 1
    return start, escape


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """Instructions with their first line's number: comment lines dropped (also inside a
    continuation), lines ending in the escape character joined."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    first = 0
    for i in range(start, len(lines)):
        raw = lines[i]
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and parts):
            continue
        if not stripped:
            continue
        if not parts:
            first = i + 1
        body = raw.rstrip()
        if body.endswith(escape):
            parts.append(body[: -len(escape)])
            continue
        parts.append(body)
        out.append((first, "".join(parts)))  # as Docker joins them: whitespace kept
        parts = []
    if parts:
        out.append((first, "".join(parts)))
    return out


def _dispatch(st: _State, line: int, keyword: str, rest: str, escape: str) -> None:
    if keyword == "FROM":
        _from(st, line, rest)
        return
    if keyword == "ARG":
        _arg(st, line, rest)
        return
    if st.base is None:
        raise st.fail(line, f"{keyword} before FROM: only ARG may come before FROM")
    if keyword in IGNORED:
        st.warnings.append((line, f"{keyword} is ignored: {IGNORED[keyword]}"))
    elif keyword in REFUSED:
        raise st.fail(line, f"{keyword} is not supported: {REFUSED[keyword]}")
    elif keyword == "ENV":
        for name, value in _pairs(st, line, rest, "ENV"):
            st.env[name] = value or ""
    elif keyword == "USER":
        words = lex.words(rest, st.scope(), st.at(line), expand=True)
        if len(words) != 1 or not words[0]:
            raise st.fail(line, "USER takes one user name or uid, e.g. 'USER agent'")
        st.user = words[0].split(":", 1)[0]
    elif keyword == "WORKDIR":
        words = lex.words(rest, st.scope(), st.at(line), expand=True)
        if len(words) != 1 or not words[0]:
            raise st.fail(line, "WORKDIR takes one path, e.g. 'WORKDIR /home/agent/workspace'")
        path = posixpath.normpath(posixpath.join(st.workdir or "/", words[0]))
        st.workdir = path
        st.steps.append(Workdir(line, path, _user(st)))
    elif keyword == "RUN":
        _run(st, line, rest)
    elif keyword in ("COPY", "ADD"):
        _copy(st, line, keyword, rest)
    elif keyword in ("ENTRYPOINT", "CMD"):
        argv = _exec_or_shell(st, line, keyword, rest)
        if keyword == "ENTRYPOINT":
            st.entrypoint, st.entrypoint_line = argv, line
        else:
            st.cmd = argv
    elif keyword == "SHELL":
        shell = lex.json_form(rest)
        if not shell:
            raise st.fail(line, 'SHELL takes the JSON form, e.g. SHELL ["/bin/bash", "-c"]')
        st.shell = shell
    else:
        raise st.fail(
            line,
            f"'{keyword}' is not a Dockerfile instruction sandkit replays (it replays FROM, "
            "ARG, ENV, USER, WORKDIR, RUN, COPY, SHELL, ENTRYPOINT and CMD)",
        )


def _user(st: _State) -> str:
    # sbx's templates end as the agent user (uid 1000), which is what a recipe starts as.
    return st.user if st.user is not None else "agent"


def _from(st: _State, line: int, rest: str) -> None:
    if st.base is not None:
        raise st.fail(
            line,
            "a second FROM (a multi-stage build) is not supported: sandkit replays one "
            "stage on its own guest; install in RUN steps of the one stage instead",
        )
    words = lex.words(rest, st.scope(), st.at(line), expand=True)
    words = [w for w in words if not w.startswith("--platform=")]
    if len(words) == 3 and words[1].lower() == "as":
        words = words[:1]
    if len(words) != 1 or not words[0]:
        raise st.fail(line, "FROM takes one image, e.g. 'FROM docker/sandbox-templates:shell'")
    st.base, st.base_line = words[0], line
    st.args = {}


def _arg(st: _State, line: int, rest: str) -> None:
    if not rest:
        raise st.fail(line, "ARG needs a name, e.g. 'ARG VERSION=1.0'")
    for name, default in _pairs(st, line, rest, "ARG", allow_bare=True):
        if name in st.build_args:
            value = st.build_args[name]
            st.used_args.add(name)
        elif default is not None:
            value = default
        elif st.base is not None and name in st.global_args:
            value = st.global_args[name]  # a global ARG declared again in the stage
        elif name in st.platform:
            value = st.platform[name]
        else:
            raise st.fail(
                line,
                f"ARG {name} has no value: give it a default ('ARG {name}=…'), or declare "
                f"a kit arg with 'buildArg: {name}' in the kit's args",
            )
        (st.args if st.base is not None else st.global_args)[name] = value


def _pairs(
    st: _State, line: int, rest: str, keyword: str, allow_bare: bool = False
) -> list[tuple[str, str | None]]:
    """NAME=VALUE pairs (ENV, ARG), or ENV's legacy 'NAME VALUE'."""
    words = lex.words(rest, st.scope(), st.at(line), expand=True)
    if keyword == "ENV" and words and "=" not in words[0]:
        name, _, value = rest.partition(" ")
        if not value.strip():
            raise st.fail(line, f"ENV {name} needs a value: 'ENV {name}=value'")
        words = [
            f"{name}={lex.words(value.strip(), st.scope(), st.at(line), expand=True, join=True)[0]}"
        ]
    out: list[tuple[str, str | None]] = []
    for word in words:
        name, sep, value = word.partition("=")
        if not NAME.fullmatch(name):
            raise st.fail(line, f"{keyword} '{name}': a name is letters, digits and '_'")
        if not sep and not allow_bare:
            raise st.fail(line, f"{keyword} {name} needs a value: '{keyword} {name}=value'")
        out.append((name, value if sep else None))
    return out


def _run(st: _State, line: int, rest: str) -> None:
    if rest.startswith("--"):
        flag = rest.split(None, 1)[0].split("=", 1)[0]
        raise st.fail(
            line,
            f"RUN {flag} is not supported: sandkit runs each step on the guest as it is "
            "(drop the flag)",
        )
    if _HEREDOC.search(rest):
        raise st.fail(
            line,
            "heredocs (<<EOF) are not supported: put the script in a file in the kit folder "
            "and COPY it, or join the commands with '&&' and '\\' line continuations",
        )
    env = tuple({**st.args, **st.env}.items())
    argv = lex.json_form(rest)
    if argv is not None:
        if not argv:
            raise st.fail(line, "RUN [] runs nothing: give a command")
        st.steps.append(Run(line, _user(st), st.workdir, env, argv=argv))
    elif not rest:
        raise st.fail(line, "RUN needs a command")
    else:
        st.steps.append(Run(line, _user(st), st.workdir, env, script=rest, shell=st.shell))


def _copy(st: _State, line: int, keyword: str, rest: str) -> None:
    if _HEREDOC.search(rest):
        raise st.fail(
            line, f"{keyword} with a heredoc is not supported: put the file in the kit folder"
        )
    chown: str | None = None
    chmod: int | None = None
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.strip()
        name, _, value = flag.partition("=")
        value = (
            lex.words(value, st.scope(), st.at(line), expand=True, join=True)[0] if value else ""
        )
        if name == "--from":
            raise st.fail(
                line,
                f"{keyword} --from (another stage or image) is not supported: sandkit copies "
                "files of the kit folder only",
            )
        if name == "--chown" and value:
            chown = value
        elif name == "--chmod" and value:
            if not re.fullmatch(r"[0-7]{3,4}", value):
                raise st.fail(line, f"--chmod={value}: give an octal mode like 0755")
            chmod = int(value, 8)
        else:
            raise st.fail(
                line, f"{keyword} {flag} is not supported (sandkit honours --chown and --chmod)"
            )
    listed = lex.json_form(rest)
    words = (
        [lex.expand(w, st.scope(), st.at(line)) for w in listed]
        if listed is not None
        else lex.words(rest, st.scope(), st.at(line), expand=True)
    )
    if len(words) < 2:
        raise st.fail(line, f"{keyword} takes a source in the kit folder and a destination")
    *sources, dest = words
    # BuildKit: a destination ending in '/' (or '.', the WORKDIR) is a folder.
    as_dir = dest.endswith(("/", "/.")) or dest == "." or len(sources) > 1
    dest = posixpath.join(st.workdir or "/", dest)
    for source in sources:
        if keyword == "ADD" and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://|git@", source):
            raise st.fail(
                line,
                f"ADD of '{source}' (a URL) is not supported: download it in a RUN step, "
                "which goes through the sandbox's proxy",
            )
        if keyword == "ADD" and re.search(r"\.(tar|tgz|tar\.\w+|tbz2?|txz)$", source):
            raise st.fail(
                line,
                f"ADD of the archive '{source}' (Docker unpacks it) is not supported: COPY it "
                "and unpack it in a RUN step",
            )
        rel = _kit_path(st, line, keyword, source)
        st.steps.append(Copy(line, rel, posixpath.normpath(dest), chown, chmod, as_dir))


def _kit_path(st: _State, line: int, keyword: str, source: str) -> str:
    """A COPY source as a path (or pattern) inside the kit folder, "" for the whole of
    it, or a refusal saying why not."""
    if source.startswith("/"):
        raise st.fail(
            line,
            f"{keyword} '{source}': an absolute source; sources are files of the kit folder, "
            "relative to it (e.g. scripts/tool.sh)",
        )
    parts = [p for p in source.split("/") if p not in ("", ".")]
    if ".." in parts or "\\" in source or (not parts and not source.startswith(".")):
        raise st.fail(
            line,
            f"{keyword} '{source}': the source must stay inside the kit folder (no '..'); "
            "copy the file into the kit",
        )
    return "/".join(parts)


def _exec_or_shell(st: _State, line: int, keyword: str, rest: str) -> tuple[str, ...]:
    argv = lex.json_form(rest)
    if argv is not None:
        return argv
    if not rest:
        raise st.fail(line, f"{keyword} needs a command")
    return (*st.shell, rest)
