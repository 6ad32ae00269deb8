"""schemaVersion "3" (docker/sandbox-kit-spec): a descriptor whose host duties are typed
capabilities. Each capability's config is validated by the model for its type."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from sandkit.kits.fields import (
    AbsPath,
    ArgName,
    ByteSize,
    EnvName,
    Mode,
    Rule,
    ServiceName,
    SpecModel,
    Str,
    _check,
    fail,
)
from sandkit.kits.spec_v2 import ApiKey, ArgSpec, OAuth

# SPEC-v3 §11: <namespace>/<name>@<version>, the version an integer from 1.
_CAP_TYPE = re.compile(
    r"(?P<ns>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)/(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"@(?P<ver>[1-9][0-9]*)"
)
_VERSION = re.compile(r"[0-9]+(?:\.[0-9A-Za-z-]+)*")


def parse_capability_type(text: str) -> tuple[str, str, int] | None:
    match = _CAP_TYPE.fullmatch(text)
    if not match:
        return None
    return match["ns"], match["name"], int(match["ver"])


class Arg(ArgSpec):
    env: EnvName | None = Field(
        None, description="Export the value into the sandbox as this variable."
    )
    buildArg: Str | None = None

    @model_validator(mode="after")
    def _env_or_build(self) -> Arg:
        if self.env is not None and self.buildArg is not None:
            fail("an arg may have 'env' or 'buildArg', not both")
        return self


class Capability(SpecModel):
    type: Str = Field(description="Capability type, e.g. com.docker.sandbox/network-policy@1.")
    name: Str = ""
    optional: bool = Field(False, description="Skip it (with a warning) where unsupported.")
    description: Str = ""
    config: dict[str, Any] = {}
    source: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _type(self) -> Capability:
        if parse_capability_type(self.type) is None:
            if re.fullmatch(r".+@0*", self.type) or re.fullmatch(r".+@0[0-9]+", self.type):
                fail(f"capability type '{self.type}': a type's version is @1 or higher")
            fail(f"capability type '{self.type}' must look like 'com.docker.sandbox/NAME@N'")
        return self


class GroupBody(SpecModel):
    name: Str = ""
    description: Str = Field("", description="Display text for the group, like its name.")
    optional: bool = Field(False, description="Skip the whole group where unsupported.")
    # Members are checked one by one (convert_v3) so errors point inside them.
    capabilities: Annotated[list[Any], Field(min_length=1)]


class CapabilityGroup(SpecModel):
    group: GroupBody


class KitV3(SpecModel):
    schemaVersion: Literal["3"]
    kind: Literal["workload", "mixin", "set", "sandbox"]
    displayName: Str | None = None
    author: Str | None = None
    description: Str | None = None
    sourceUrl: Str | None = None
    iconUrl: Str | None = None
    version: Str | None = None
    licenses: list[Str] | None = None
    provides: list[Str] = []
    requires: list[Str] = []
    integrates: list[Str] = []
    conflicts: list[Str] = []
    # Items are checked one by one (a capability or a group) so errors point inside them.
    capabilities: list[dict[str, Any]] = []
    args: dict[ArgName, Arg] = {}
    build: Str | None = None
    dockerfile: Str | None = None
    kits: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _checks(self) -> KitV3:
        if self.version is not None and not _VERSION.fullmatch(self.version):
            fail(f"version '{self.version}' must look like 1.2.3 (no leading 'v')")
        if self.iconUrl is not None and not self.iconUrl.startswith("https://"):
            fail("iconUrl must be an https:// address")
        if sum(x is not None for x in (self.build, self.dockerfile, self.kits)) > 1:
            fail("give at most one of 'build', 'dockerfile' or 'kits'")
        return self


# ---- capability configs -------------------------------------------------------------


class PhaseRules(SpecModel):
    allow: list[Rule] = []
    deny: list[Rule] = []


class NetworkPolicy1(SpecModel):
    install: PhaseRules | None = None
    runtime: PhaseRules | None = None


Method = Annotated[
    Str, _check(r"[A-Z]+", "method '{value}' must be an upper-case HTTP method or ANY")
]


class RuleObject(SpecModel):
    hosts: Annotated[list[Rule], Field(min_length=1)]
    methods: list[Method] = []
    paths: list[Str] = []

    @model_validator(mode="after")
    def _paths_need_methods(self) -> RuleObject:
        if self.paths and not self.methods:
            fail("'paths' need 'methods' (use [ANY] for every method)")
        return self


class PhaseRules2(SpecModel):
    allow: list[Rule | RuleObject] = []
    deny: list[Rule | RuleObject] = []


class NetworkPolicy2(SpecModel):
    install: PhaseRules2 | None = None
    runtime: PhaseRules2 | None = None


Phase = Literal["install", "runtime"]


class CredentialConfig(SpecModel):
    service: ServiceName
    description: Str = ""
    phase: Phase | list[Phase] = "runtime"
    apiKey: ApiKey | None = None
    oauth: OAuth | None = None

    @model_validator(mode="after")
    def _some_auth(self) -> CredentialConfig:
        if self.apiKey is None and self.oauth is None:
            fail(f"credential '{self.service}' needs an 'apiKey' or 'oauth' block")
        return self


class Hook(SpecModel):
    command: Str | Annotated[list[Str], Field(min_length=1)]
    user: Str | None = None
    env: list[EnvName] = []
    description: Str = ""


class StartupHook(Hook):
    background: bool = False


class LifecycleFile(SpecModel):
    path: AbsPath
    content: Str = ""
    mode: Mode = "0644"
    overwrite: bool = True
    description: Str = ""


class Lifecycle(SpecModel):
    install: list[Hook] = []
    startup: list[StartupHook] = []
    files: list[LifecycleFile] = []
    interactive: list[Str] = []


class AgentContext(SpecModel):
    filename: Str | None = None
    directory: AbsPath | None = None
    contentFile: Str | None = None
    content: Str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> AgentContext:
        if self.content is not None and self.contentFile is not None:
            fail("give 'content' or 'contentFile', not both")
        if self.directory is not None and not self.filename:
            fail("'directory' needs a 'filename' (the profile written in it), e.g. AGENTS.md")
        if self.directory is not None and self.filename and "/" in self.filename:
            fail(f"with 'directory', 'filename' is one name, not a path ('{self.filename}')")
        return self


class PortConfig(SpecModel):
    name: Str = ""
    container: Annotated[int, Field(ge=1, le=65535)]
    transport: Literal["tcp", "udp"] = "tcp"


def _unspecified(value: Any) -> Any:
    return None if value == "" else value


class VolumeConfig(SpecModel):
    path: AbsPath
    # volume@1: an explicitly empty size or mode means unspecified, as an omitted one.
    size: Annotated[ByteSize | None, BeforeValidator(_unspecified)] = None
    tmpfs: bool = False
    mode: Annotated[Mode | None, BeforeValidator(_unspecified)] = None


class ResourcesConfig(SpecModel):
    cpu: Annotated[float, Field(ge=0)] | None = None
    memory: ByteSize | None = None
    gpu: Str | None = None


class NoConfig(SpecModel):
    pass


def _canonical(value: str) -> str:
    """agent-skills@1/host-mount@1: an alias such as /x/../y would evade the duplicate
    check, so the canonical form is required rather than normalised in."""
    if not value.startswith("/") or value == "/":
        fail(f"path '{value}' must be absolute and not '/' itself")
    if "\0" in value or value.endswith("/") or "//" in value:
        fail(f"path '{value}' must be canonical: no doubled '/', no trailing '/', no NUL")
    if any(part in (".", "..") for part in value.split("/")[1:]):
        fail(f"path '{value}' must be canonical: no '.' or '..' segments")
    return value


CanonicalPath = Annotated[Str, AfterValidator(_canonical)]
PROMPT = "{{.Prompt}}"
SESSION_ID = "{{.SessionID}}"


def _needs(tail: list[str] | None, placeholder: str, verb: str) -> None:
    if tail and not any(placeholder in arg for arg in tail):
        fail(f"'{verb}' must reference {placeholder} (the caller's value goes there)")


class AgentSessions(SpecModel):
    """agent-sessions@1: argv tails appended to the launch command (headless)."""

    prompt: list[Str] | None = None
    resume: list[Str] | None = None
    continue_: list[Str] | None = Field(None, alias="continue")
    list_: Str | list[Str] | None = Field(None, alias="list")

    @model_validator(mode="after")
    def _verbs(self) -> AgentSessions:
        # An empty tail reads as absent here (unlike the interactive page).
        if not any((self.prompt, self.resume, self.continue_, self.list_)):
            fail("agent-sessions needs at least one verb: prompt, resume, continue or list")
        _needs(self.prompt, PROMPT, "prompt")
        _needs(self.resume, SESSION_ID, "resume")
        return self


class AgentInteractiveSessions(SpecModel):
    """agent-interactive-sessions@1: argv tails run with a terminal; a present [] is the
    launch argv alone, an absent key an unsupported verb (newSession: the launch)."""

    prompt: list[Str] | None = None
    resume: list[Str] | None = None
    continue_: list[Str] | None = Field(None, alias="continue")
    newSession: list[Str] | None = None
    sessionPicker: list[Str] | None = None
    list_: Str | list[Str] | None = Field(None, alias="list")

    @model_validator(mode="after")
    def _verbs(self) -> AgentInteractiveSessions:
        if not self.model_fields_set:
            fail(
                "agent-interactive-sessions needs at least one key: prompt, resume, continue, "
                "newSession, sessionPicker or list"
            )
        listing = self.list_
        if listing is not None and not (listing.strip() if isinstance(listing, str) else listing):
            fail("'list' must name a command (an empty list or string is not one)")
        if self.prompt is not None:
            _needs(self.prompt or [""], PROMPT, "prompt")
        if self.resume is not None:
            _needs(self.resume or [""], SESSION_ID, "resume")
        return self


_SKILL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")


def skill_name_problem(name: str) -> str | None:
    if not _SKILL_NAME.fullmatch(name) or name in (".", ".."):
        return (
            f"skill name '{name}' must be one file name (letters, digits, '.', '_', '-'; "
            "not starting with '.'; at most 255 characters)"
        )
    return None


class AgentSkill(SpecModel):
    """agent-skill@1: a skill bundle at ``path`` (in the guest), exposed to the agent as
    ``<agent-skills path>/<name>``; ``name`` defaults to the path's last segment."""

    path: CanonicalPath
    name: Str | None = None

    @model_validator(mode="after")
    def _name(self) -> AgentSkill:
        problem = skill_name_problem(self.effective_name)
        if problem is not None:
            if self.name is None:
                problem += "; give 'name' to name a differently named source"
            fail(problem)
        return self

    @property
    def effective_name(self) -> str:
        return self.name if self.name is not None else posixpath.basename(self.path)


class AgentSkills(SpecModel):
    """agent-skills@1: a directory the agent scans for skills."""

    path: CanonicalPath
    mode: Literal["readonly", "readwrite"] = "readonly"


def _mount_point(value: str) -> str:
    """A path the guest's mount can take (the kernel's limits: 4095 bytes, 255 a name)."""
    if len(value.encode()) > 4095 or any(len(p.encode()) > 255 for p in value.split("/")):
        fail(f"path '{value[:60]}...' is too long for a mount point")
    return value


class HostMount(SpecModel):
    """host-mount@1: a runtime-owned host directory shared at ``path`` (no host path:
    sandkit chooses the folder, keyed on the kit and the path)."""

    path: Annotated[CanonicalPath, AfterValidator(_mount_point)]
    mode: (
        Annotated[
            Str, _check(r"0?[0-7]{3,4}", "mode '{value}' must be octal like \"0755\" (quote it)")
        ]
        | None
    ) = None


# Capability name@version → config model: the types sandkit implements.
CONFIGS: dict[tuple[str, int], type[SpecModel]] = {
    ("network-policy", 1): NetworkPolicy1,
    ("network-policy", 2): NetworkPolicy2,
    ("credential", 1): CredentialConfig,
    ("lifecycle", 1): Lifecycle,
    ("agent-context", 1): AgentContext,
    ("port", 1): PortConfig,
    ("volume", 1): VolumeConfig,
    ("resources", 1): ResourcesConfig,
    ("sbx", 1): NoConfig,
    ("privileged", 1): NoConfig,
    ("agent-sessions", 1): AgentSessions,
    ("agent-interactive-sessions", 1): AgentInteractiveSessions,
    ("agent-skill", 1): AgentSkill,
    ("agent-skills", 1): AgentSkills,
    ("host-mount", 1): HostMount,
}
SANDBOX_NAMESPACE = "com.docker.sandbox"
# Well-known types sandkit does not implement yet: a kit needing one is valid, but cannot
# run here (`kit validate` exits 3 for it, naming them).
NOT_IMPLEMENTED: dict[tuple[str, int], str] = {}
# Well-known types sandkit will not provide, and why.
UNSUPPORTED: dict[tuple[str, int], str] = {
    ("kit-registry", 1): "it lets the sandbox fetch kits from an OCI registry, which "
    "sandkit does not do (pass each kit with --kit instead)",
}
# SPEC-v3 §7.1: at most one entry each per declaration block.
SINGLETONS = {
    "network-policy",
    "resources",
    "privileged",
    "kit-registry",
    "agent-sessions",
    "agent-interactive-sessions",
    "lifecycle",
    "agent-context",
    "sbx",
    "long-running",
    "git-identity",
}
CONFIG_LESS = {"privileged", "kit-registry", "sbx", "long-running", "git-identity"}
