"""The canonical kit model: every schema version folds into this, and composition works
on it alone. Field names are snake_case in Python and camelCase when printed.

Each contributed item remembers its origin (kit, file, line) so that a proxy decision
or an install failure can name the kit line it came from."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel


class Canonical(BaseModel):
    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


class Origin(Canonical):
    """Where an item was written: 1-based line and column, like compiler messages."""

    kit: str
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        if self.line == 0:  # built in, not written in a file
            return f"{self.kit} {self.file}"
        return f"{self.kit} ({self.file}:{self.line}:{self.column})"


OriginField = Annotated[Origin, PlainSerializer(str, return_type=str, when_used="json")]


class KitKind(enum.StrEnum):
    AGENT = "agent"
    MIXIN = "mixin"


class Phase(enum.StrEnum):
    """When a network rule applies: v1/v2 rules apply always; v3 splits install/runtime."""

    ANY = "any"
    INSTALL = "install"
    RUNTIME = "runtime"


class NetworkRule(Canonical):
    pattern: str
    phase: Phase = Phase.ANY
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    origin: OriginField


class Network(Canonical):
    allow: tuple[NetworkRule, ...] = ()
    deny: tuple[NetworkRule, ...] = ()


class Inject(Canonical):
    """Put the secret in ``header`` as ``format`` (one %s) on requests to ``domain``."""

    domain: str
    header: str
    format: str = "%s"
    basic_username: str | None = None


class CredentialSource(Canonical):
    """Where on the host the value comes from (v1 sources; v2 uses the secret store then env)."""

    env: tuple[str, ...] = ()
    file: str | None = None
    parser: str = ""
    priority: Literal["env-first", "file-first"] = "env-first"


class OAuthSpec(Canonical):
    token_host: str
    token_path: str
    resource_hosts: tuple[str, ...] = ()
    access_sentinel: str | None = None
    refresh_sentinel: str | None = None
    credential_file: str | None = None
    credential_structure: dict[str, object] | None = None
    credential_template: str | None = None
    credential_format: Literal["json", "toml"] | None = None
    response_fields: dict[str, str] = {}
    passthrough: bool = False


class Credential(Canonical):
    service: str
    description: str = ""
    required: bool = False
    env: str | None = None
    proxy_managed: bool = False
    inject: tuple[Inject, ...] = ()
    oauth: OAuthSpec | None = None
    sources: CredentialSource | None = None
    phases: tuple[Phase, ...] = (Phase.RUNTIME,)
    origin: OriginField


class Command(Canonical):
    """A command run in the guest: argv, as ``user`` (a uid as text)."""

    argv: tuple[str, ...]
    user: str
    background: bool = False
    env: tuple[str, ...] = ()
    description: str = ""
    origin: OriginField


class SetupFile(Canonical):
    path: str
    content: str = ""
    mode: int = 0o644
    overwrite: bool = True
    user: str = "1000"
    description: str = ""
    origin: OriginField


class StaticFile(Canonical):
    """A file shipped in the kit under files/home/ or files/workspace/."""

    target: Literal["home", "workspace"]
    path: str  # relative, '/'-separated, no '..'
    mode: int = 0o644
    kit: str


class AgentContext(Canonical):
    """A kit's instructions. With ``directory`` (v3 agent-context@1) ``filename`` there is
    an explicit profile, which wins over the agent's legacy ``context_filename``."""

    kit: str
    content: str
    filename: str | None = None
    directory: str | None = None


class Port(Canonical):
    container: int
    protocol: Literal["tcp", "udp"] = "tcp"
    name: str = ""


class Volume(Canonical):
    """None for size or mode means unspecified (a runtime may then size a block volume at
    512 MiB), which differs from any explicit value when two requests are compared."""

    path: str
    tmpfs: bool = False
    size_bytes: int | None = None
    mode: int | None = None
    # v3 (volume@1): another request for this path must match it exactly; v1/v2: last wins.
    # Excluded from dumps: composition-time facts, not part of what a sandbox runs.
    strict: bool = Field(False, exclude=True)
    origin: OriginField | None = Field(None, exclude=True)


class Skill(Canonical):
    """agent-skill@1: the bundle at ``source`` in the guest, exposed to the agent as
    ``<skills dir>/<name>``. ``files``: the bundle shipped in the kit folder under
    files/skills/NAME/ (written to ``source`` by sandkit); empty when an install step or
    files/home puts it there."""

    name: str
    source: str
    kit: str
    files: tuple[str, ...] = ()
    origin: OriginField


class SkillsDir(Canonical):
    """agent-skills@1: a directory the agent scans for skills. sandkit has no shared
    host skills store (the host setting is "off"), so ``mode`` never grants host access."""

    path: str
    mode: Literal["readonly", "readwrite"] = "readonly"
    origin: OriginField


class HostMount(Canonical):
    """host-mount@1: a host directory sandkit owns, keyed on the declaring kit's identity
    and the path (``key``), shared at ``path`` in the guest."""

    path: str
    mode: int | None = None
    kit: str
    key: str
    origin: OriginField


class SessionVerbs(Canonical):
    """agent-sessions@1 / agent-interactive-sessions@1: argv tails appended to the agent's
    launch command (None: the agent has no such verb); ``list_command`` is a whole
    command printing session ids, most recent first."""

    prompt: tuple[str, ...] | None = None
    resume: tuple[str, ...] | None = None
    continue_session: tuple[str, ...] | None = None
    new_session: tuple[str, ...] | None = None
    session_picker: tuple[str, ...] | None = None
    list_command: tuple[str, ...] | None = None


class Resources(Canonical):
    cpus: float | None = None
    memory_bytes: int | None = None
    gpu: str | None = None


class Agent(Canonical):
    """How the agent is started. Only agent kits have one."""

    image: str | None = None
    entrypoint: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    interactive_args: tuple[str, ...] | None = None
    context_filename: str | None = None
    resources: Resources = Resources()
    sessions: SessionVerbs | None = None
    interactive_sessions: SessionVerbs | None = None
    # A v3 workload's image config, read from its Dockerfile (kits/dockerfile.py): the
    # final USER and WORKDIR, and why there is no command when the Dockerfile is missing.
    user: str | None = None
    workdir: str | None = None
    command_missing: str | None = None


class KitContent(Canonical):
    """What kits contribute and what composition merges."""

    network: Network = Network()
    credentials: tuple[Credential, ...] = ()
    environment: dict[str, str] = {}
    install: tuple[Command, ...] = ()
    startup: tuple[Command, ...] = ()
    files: tuple[SetupFile, ...] = ()
    static_files: tuple[StaticFile, ...] = ()
    agent_context: tuple[AgentContext, ...] = ()
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    privileged: bool = False
    skills: tuple[Skill, ...] = ()
    skill_dirs: tuple[SkillsDir, ...] = ()
    host_mounts: tuple[HostMount, ...] = ()


class ArgDecl(Canonical):
    default: str | None = None
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    env: str | None = None


class Provide(Canonical):
    """A v3 ``provides`` entry: a normalized capability name, at a version if known."""

    name: str
    version: str | None = None
    text: str
    origin: OriginField


class Constraint(Canonical):
    op: Literal[">=", ">", "<=", "<", "="]
    version: str


class Requirement(Canonical):
    """A v3 ``requires``/``integrates`` entry (constraints ANDed) or ``conflicts`` name."""

    name: str
    constraints: tuple[Constraint, ...] = ()
    text: str
    origin: OriginField


class Kit(KitContent):
    """One kit, validated and folded to the canonical shape."""

    name: str
    kind: KitKind
    schema_version: Literal["1", "2", "3"]
    file: str = Field(description="The spec file the kit was read from.")
    origin: OriginField = Field(description="Where the kit names itself (its name or kind key).")
    display_name: str | None = None
    description: str | None = None
    version: str | None = None
    source_url: str | None = None
    agent: Agent | None = None
    args: dict[str, ArgDecl] = {}
    extends: str | None = None
    requires_agent: str | None = None
    provides: tuple[Provide, ...] = ()
    requires: tuple[Requirement, ...] = ()
    integrates: tuple[Requirement, ...] = ()
    conflicts: tuple[Requirement, ...] = ()


class KitRef(Canonical):
    name: str
    kind: KitKind
    file: str


class ResolvedSandbox(KitContent):
    """One agent kit plus its mixins, merged with sbx's rules: what a sandbox runs."""

    agent_name: str
    agent: Agent
    kits: tuple[KitRef, ...]
