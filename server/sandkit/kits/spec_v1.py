"""schemaVersion "1": the legacy grammar, kept so published v1 kits keep working.

Everything here folds into the canonical model (convert_v1); each legacy block that has
a v2 spelling gets one warning that points at `sandkit kit migrate`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sandkit.kits.fields import (
    AbsPath,
    EnvName,
    Host,
    KitName,
    LockedPath,
    Rule,
    ServiceName,
    SpecModel,
    Str,
    ValueFormat,
    fail,
)
from sandkit.kits.spec_v2 import (
    Install,
    NetworkRules,
    Port,
    Requires,
    Security,
    Sentinels,
    SetupFile,
    Startup,
    TokenEndpoint,
)


class Entrypoint(SpecModel):
    run: list[Str] = []
    args: list[Str] = []
    ttyArgs: list[Str] = []
    # A string in published kits (e.g. "append"); v2 has no equivalent: migrate drops it.
    pipeMode: Str | None = None


class Resources(SpecModel):
    cpu: float | None = Field(None, ge=0)
    memoryMB: int | None = Field(None, ge=1)
    gpu: Str | None = None


class Agent(SpecModel):
    image: Str
    aiFilename: Str | None = None
    entrypoint: Entrypoint | None = None
    resources: Resources | None = None
    build: dict[str, Any] | None = None
    persistence: Str | None = None


class ServiceAuth(SpecModel):
    headerName: Str
    valueFormat: ValueFormat = "%s"


class Network(SpecModel):
    allowedDomains: list[Rule] = []
    deniedDomains: list[Rule] = []
    serviceDomains: dict[Str, ServiceName] = {}
    serviceAuth: dict[Str, ServiceAuth] = {}
    publishedPorts: list[Port] = []


class FileSource(SpecModel):
    path: Str
    parser: Str = ""


class Source(SpecModel):
    env: list[EnvName] = []
    file: FileSource | None = None
    priority: Literal["env-first", "file-first"] = "env-first"
    required: bool = False


class Credentials(SpecModel):
    sources: dict[ServiceName, Source] = {}


class Environment(SpecModel):
    variables: dict[EnvName, Str] = {}
    proxyManaged: list[EnvName] = []


class Commands(SpecModel):
    install: list[Install] = []
    startup: list[Startup] = []
    initFiles: list[SetupFile] = []


class CredentialFile(SpecModel):
    path: Str
    template: Str | None = None
    structure: dict[str, Any] | None = None


class OAuth(SpecModel):
    service: ServiceName
    tokenEndpoint: TokenEndpoint
    sentinels: Sentinels | None = None
    credentialFile: CredentialFile | None = None
    skipIfEnv: list[EnvName] = []
    responseFields: dict[Str, Str] = {}
    passthroughResponse: bool = False

    @model_validator(mode="after")
    def _sentinels(self) -> OAuth:
        if (self.sentinels is None or not self.sentinels.complete) and not self.passthroughResponse:
            fail(
                "oauth needs 'sentinels' with 'accessToken' and 'refreshToken' "
                "(unless 'passthroughResponse: true')"
            )
        return self


class Settings(SpecModel):
    containerSettings: dict[Str, bool] = {}


class Caps(SpecModel):
    network: NetworkRules = NetworkRules()


class KitV1(SpecModel):
    schemaVersion: Literal["1"]
    kind: Literal["agent", "sandbox", "mixin"]
    name: KitName
    displayName: Str | None = None
    description: Str | None = None
    version: Str | None = None
    sourceURL: Str | None = None
    requires: Requires | None = None
    extends: Str | None = None
    locked: list[LockedPath] = []
    licenses: list[Str] | None = None
    security: Security | None = None
    caps: Caps | None = None
    agent: Agent | None = None
    sandbox: Agent | None = None
    network: Network | None = None
    publishedPorts: list[Port] = []
    credentials: Credentials | None = None
    environment: Environment | None = None
    commands: Commands | None = None
    oauth: OAuth | None = None
    memory: Str | None = None
    agentContext: Str | None = None
    settings: Settings | None = None
    kitDir: Str | None = None
    tmpfs: dict[AbsPath, Str] = {}
    volumes: dict[AbsPath, Str] = {}
    secrets: list[EnvName] = []
    egress: dict[Host, Str] = {}
