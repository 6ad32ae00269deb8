"""schemaVersion "2": the clean, strict kit grammar (sbx-kits-contrib SPEC-v2).

These models mirror the YAML exactly, so pydantic's locations are YAML paths. Rules that
span several fields are checked while converting to the canonical model (convert_v2)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sandkit.kits.fields import (
    AbsPath,
    ArgName,
    ByteSize,
    EnvName,
    Host,
    KitName,
    LockedPath,
    Mode,
    Rule,
    ServiceName,
    SpecModel,
    Str,
    ValueFormat,
    fail,
)


class ArgSpec(SpecModel):
    """A value the user passes with --kit-arg, referenced as ${{ kit.args.NAME }}."""

    default: Str | None = Field(None, description="Value used when the user gives none.")
    required: bool = Field(False, description="The user must give a value (instead of default).")
    description: Str = Field("", description="What the value is for, shown to the user.")
    enum: list[Str] | None = Field(None, description="The only values allowed.")
    pattern: Str | None = Field(None, description="Regular expression the whole value must match.")

    @model_validator(mode="after")
    def _one_source_one_check(self) -> ArgSpec:
        if (self.default is None) == (not self.required):
            fail("an arg needs exactly one of 'default: VALUE' or 'required: true'")
        if self.enum is not None and self.pattern is not None:
            fail("an arg may have 'enum' or 'pattern', not both")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                fail(f"pattern '{self.pattern}' is not a valid regular expression: {exc}")
        if self.default is not None:
            check_arg_value(self, self.default)
        return self


def check_arg_value(spec: ArgSpec, value: str) -> None:
    if spec.enum is not None and value not in spec.enum:
        fail(f"value '{value}' is not one of: {', '.join(spec.enum)}")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        fail(f"value '{value}' does not match pattern '{spec.pattern}'")


class Build(SpecModel):
    context: Str = "."
    dockerfile: Str = "Dockerfile"
    args: dict[Str, Str] = {}
    target: Str = ""
    platforms: list[Str] = []


class Command(SpecModel):
    default: list[Str] = Field([], description="Arguments for a non-interactive run.")
    interactive: list[Str] = Field(
        [], description="Arguments for an interactive run (else default)."
    )


class Resources(SpecModel):
    cpu: Annotated[float, Field(ge=0)] | None = Field(None, description="CPUs for the VM.")
    memory: ByteSize | None = Field(None, description='Memory for the VM, e.g. "4g".')
    gpu: Str | None = None


class Sandbox(SpecModel):
    image: Str | None = Field(
        None, description="Base image reference (sbx); informational in sandkit."
    )
    build: Build | None = None
    entrypoint: list[Str] | None = Field(None, description="The agent's command line (argv).")
    command: list[Str] | Command | None = Field(
        None, description="Default arguments to the entrypoint."
    )
    resources: Resources | None = None


class AgentInstructions(SpecModel):
    filename: Str | None = Field(
        None, description="Agent context file name, e.g. CLAUDE.md (sandbox kits)."
    )
    content: Str = Field("", description="Markdown the agent reads as instructions.")
    # A sandkit extension, v3 agent-context@1's 'directory' for a v2 kit: agents such as
    # gemini read their profile from their own folder, not beside the workspace.
    directory: AbsPath | None = Field(
        None,
        description="sandkit: the folder the profile goes in, e.g. /home/agent/.gemini "
        "(as v3 agent-context@1 'directory'); else beside the workspace.",
    )

    @model_validator(mode="after")
    def _directory(self) -> AgentInstructions:
        if self.directory is not None and (not self.filename or "/" in self.filename):
            fail("'directory' needs a 'filename' that is one name, e.g. GEMINI.md")
        return self


class NetworkRules(SpecModel):
    allow: list[Rule] = Field(
        [], description="Hosts the sandbox may reach: host, host:port, *.host, **.host, **, CIDR."
    )
    deny: list[Rule] = Field([], description="Hosts the sandbox may never reach; deny beats allow.")


class Permissions(SpecModel):
    network: NetworkRules = NetworkRules()


class Port(SpecModel):
    container: Annotated[int, Field(ge=1, le=65535)] = Field(description="Port inside the sandbox.")
    protocol: Literal["", "tcp", "udp"] = ""
    name: Str = ""


class Inject(SpecModel):
    domain: Host = Field(description="Host whose requests get the real secret; must be allowed.")
    header: Str | None = Field(None, description="Header to set, e.g. Authorization or x-api-key.")
    format: ValueFormat | None = Field(
        None, description='Header value with one %s, e.g. "Bearer %s".'
    )
    scheme: Literal["bearer", "basic"] | None = Field(
        None, description="Shorthand for common formats."
    )
    username: Str | None = Field(None, description="User name for scheme: basic.")

    @model_validator(mode="after")
    def _shape(self) -> Inject:
        if self.format is not None and self.scheme is not None:
            fail("give 'format' or 'scheme', not both")
        if self.scheme == "basic" and not self.username:
            fail("scheme 'basic' needs a 'username'")
        if self.scheme is None and self.header is None:
            fail("give a 'header' (with an optional 'format') or a 'scheme'")
        return self


class ApiKey(SpecModel):
    name: EnvName | None = Field(
        None, description="Environment variable the agent reads the key from."
    )
    proxyManaged: bool = Field(
        False, description="Set the variable to a placeholder inside the sandbox."
    )
    inject: list[Inject] = []


class TokenEndpoint(SpecModel):
    host: Host
    path: Str


class Sentinels(SpecModel):
    """Placeholders the guest sees for OAuth tokens. Optional as a pair only with
    passthrough, where the real token goes to the guest (``sentinels: {}`` is valid)."""

    accessToken: Str | None = None
    refreshToken: Str | None = None

    @property
    def complete(self) -> bool:
        return self.accessToken is not None and self.refreshToken is not None


class CredentialFile(SpecModel):
    path: Str
    structure: dict[str, Any] | None = None
    template: Str | None = None
    format: Literal["json", "toml"] | None = None


class OAuth(SpecModel):
    tokenEndpoint: TokenEndpoint
    resourceHosts: list[Host] = []
    sentinels: Sentinels | None = None
    credentialFile: CredentialFile | None = None
    responseFields: dict[Str, Str] = {}
    skipIfEnv: list[EnvName] = []
    passthrough: bool = False

    @model_validator(mode="after")
    def _sentinels(self) -> OAuth:
        if (self.sentinels is None or not self.sentinels.complete) and not self.passthrough:
            fail(
                "oauth needs 'sentinels' with 'accessToken' and 'refreshToken' "
                "(unless 'passthrough: true')"
            )
        return self


class Credential(SpecModel):
    service: ServiceName = Field(description="Service id, the key of `sandkit secret set SERVICE`.")
    description: Str = ""
    required: bool = Field(False, description="Refuse to start without a value for this service.")
    provider: Str | None = None
    apiKey: ApiKey | None = None
    oauth: OAuth | None = None

    @model_validator(mode="after")
    def _some_auth(self) -> Credential:
        if self.apiKey is None and self.oauth is None:
            fail(f"credential '{self.service}' needs an 'apiKey' or 'oauth' block")
        return self


class Environment(SpecModel):
    variables: dict[EnvName, Str] = Field(
        {}, description="Environment variables set in the sandbox."
    )


class Install(SpecModel):
    command: Str = Field(description="Shell command run once when the sandbox is created.")
    user: Str = Field("0", description='User id to run as ("0" = root).')
    description: Str = ""


class Startup(SpecModel):
    command: Annotated[list[Str], Field(min_length=1)] = Field(
        description="argv run at every boot."
    )
    user: Str = Field("1000", description='User id to run as ("1000" = agent).')
    background: bool = Field(False, description="Do not wait for it before starting the agent.")
    description: Str = ""


class SetupFile(SpecModel):
    path: AbsPath = Field(description="Absolute path inside the sandbox.")
    content: Str = ""
    mode: Mode = "0644"
    onlyIfMissing: bool = Field(False, description="Keep an existing file.")
    description: Str = ""


class Setup(SpecModel):
    install: list[Install] = []
    startup: list[Startup] = []
    files: list[SetupFile] = []


class Volume(SpecModel):
    path: AbsPath
    type: Literal["", "tmpfs"] = ""
    size: ByteSize | None = None
    mode: Mode | None = None


class Security(SpecModel):
    privileged: bool = False


class Requires(SpecModel):
    agent: KitName | None = Field(None, description="Only compose this mixin with that agent kit.")


class KitV2(SpecModel):
    schemaVersion: Literal["2"]
    kind: Literal["sandbox", "mixin"] = Field(
        description="sandbox (an agent) or mixin (adds to one)."
    )
    name: KitName
    version: Str | None = None
    displayName: Str | None = None
    description: Str | None = None
    sourceURL: Str | None = None
    licenses: Annotated[list[Str], Field(min_length=1)] | None = None
    locked: list[LockedPath] = []
    security: Security | None = None
    args: dict[ArgName, ArgSpec] = {}
    sandbox: Sandbox | None = None
    agentInstructions: AgentInstructions | None = None
    permissions: Permissions | None = None
    ports: list[Port] = []
    publishedPorts: list[Port] = []
    credentials: list[Credential] = []
    environment: Environment | None = None
    setup: Setup | None = None
    volumes: list[Volume] = []
    extends: Str | None = Field(None, description="Built-in agent kit this sandbox kit builds on.")
    mixins: list[Str] = []
    requires: Requires | None = None
