"""A v1 kit rewritten as v2 (pure over the loaded models): `sandkit kit migrate`."""

from __future__ import annotations

from typing import Any

from sandkit.kits import model as m
from sandkit.kits import spec_v1 as v1
from sandkit.kits.loader import LoadedKit
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import parse


def migrate(loaded: LoadedKit) -> tuple[dict[str, Any], list[str]]:
    """The v2 document and notes on what has no v2 equivalent. The kit must be v1."""
    if loaded.kit.schema_version != "1":
        raise ValueError("only schemaVersion 1 kits need migrating")
    ctx = Context(loaded.source.spec_file, parse(loaded.source.text, loaded.source.spec_file))
    spec = ctx.validate(v1.KitV1, ctx.located.data)
    assert spec is not None  # it loaded, so it validates
    kit, notes = loaded.kit, list[str]()
    doc = _identity(spec, kit)
    if kit.agent:
        doc["sandbox"] = _sandbox(kit.agent)
    instructions = _agent_instructions(kit)
    if instructions is not None:
        doc["agentInstructions"] = instructions
    network = {
        k: [r.pattern for r in getattr(kit.network, k)]
        for k in ("allow", "deny")
        if getattr(kit.network, k)
    }
    if network:
        doc["permissions"] = {"network": network}
    if kit.ports:
        doc["ports"] = [
            {
                "container": p.container,
                "protocol": p.protocol,
                **({"name": p.name} if p.name else {}),
            }
            for p in kit.ports
        ]
    if kit.credentials:
        doc["credentials"] = [_credential(c, notes) for c in kit.credentials]
    if kit.environment:
        doc["environment"] = {"variables": dict(kit.environment)}
    setup = _setup(kit)
    if setup:
        doc["setup"] = setup
    if kit.volumes:
        doc["volumes"] = [
            {"path": v.path, **({"type": "tmpfs"} if v.tmpfs else {})} for v in kit.volumes
        ]
    notes += _dropped(spec)
    return doc, notes


def _identity(spec: v1.KitV1, kit: m.Kit) -> dict[str, Any]:
    """The document's head: version, kind, name, metadata, security, extends, requires."""
    doc: dict[str, Any] = {
        "schemaVersion": "2",
        "kind": "sandbox" if kit.agent else "mixin",
        "name": kit.name,
    }
    for key in ("displayName", "description", "version", "sourceURL", "licenses"):
        if getattr(spec, key):
            doc[key] = getattr(spec, key)
    if spec.locked:
        doc["locked"] = list(spec.locked)
    if kit.privileged:
        doc["security"] = {"privileged": True}
    if spec.extends:
        doc["extends"] = spec.extends
    if kit.requires_agent:
        doc["requires"] = {"agent": kit.requires_agent}
    return doc


def _agent_instructions(kit: m.Kit) -> dict[str, Any] | None:
    context = kit.agent_context[0] if kit.agent_context else None
    if not (context or (kit.agent and kit.agent.context_filename)):
        return None
    return {
        k: v
        for k, v in (
            ("filename", kit.agent.context_filename if kit.agent else None),
            ("content", context.content if context else None),
        )
        if v
    }


def _dropped(spec: v1.KitV1) -> list[str]:
    """Notes on the v1 settings that have no v2 equivalent."""
    notes: list[str] = []
    if spec.settings and spec.settings.containerSettings:
        notes.append("settings.containerSettings has no v2 equivalent and was dropped")
    block = spec.agent or spec.sandbox
    if block and block.entrypoint and block.entrypoint.pipeMode is not None:
        notes.append(
            f"entrypoint.pipeMode ({block.entrypoint.pipeMode}) has no v2 equivalent and was dropped"
        )
    return notes


def _sandbox(agent: m.Agent) -> dict[str, Any]:
    out: dict[str, Any] = {"image": agent.image}
    if agent.entrypoint:
        out["entrypoint"] = list(agent.entrypoint)
    if agent.interactive_args is not None:
        out["command"] = {"default": list(agent.args), "interactive": list(agent.interactive_args)}
    elif agent.args:
        out["command"] = list(agent.args)
    r = agent.resources
    res = {
        k: v
        for k, v in (
            ("cpu", r.cpus),
            ("memory", f"{r.memory_bytes >> 20}m" if r.memory_bytes else None),
            ("gpu", r.gpu),
        )
        if v is not None
    }
    if res:
        out["resources"] = res
    return out


def _credential(c: m.Credential, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"service": c.service}
    if c.required:
        out["required"] = True
    if c.env or c.inject:
        key: dict[str, Any] = {}
        if c.env:
            key["name"] = c.env
        if c.proxy_managed:
            key["proxyManaged"] = True
        if c.inject:
            key["inject"] = [
                {"domain": i.domain, "header": i.header, "format": i.format} for i in c.inject
            ]
        out["apiKey"] = key
    if c.oauth:
        o = c.oauth
        oauth: dict[str, Any] = {"tokenEndpoint": {"host": o.token_host, "path": o.token_path}}
        if o.resource_hosts:
            oauth["resourceHosts"] = list(o.resource_hosts)
        if o.access_sentinel and o.refresh_sentinel:
            oauth["sentinels"] = {
                "accessToken": o.access_sentinel,
                "refreshToken": o.refresh_sentinel,
            }
        if o.credential_file:
            oauth["credentialFile"] = {
                "path": o.credential_file,
                **(
                    {"structure": o.credential_structure}
                    if o.credential_structure
                    else {"template": o.credential_template}
                    if o.credential_template
                    else {}
                ),
                **({"format": o.credential_format} if o.credential_format else {}),
            }
        if o.response_fields:
            oauth["responseFields"] = dict(o.response_fields)
        if o.passthrough:
            oauth["passthrough"] = True
        out["oauth"] = oauth
    if c.sources and (c.sources.file or len(c.sources.env) > 1):
        notes.append(
            f"credentials.sources.{c.service}: v2 reads the secret store, then the "
            f"variable {c.env or '(none)'}; store other sources with `sandkit secret set {c.service}`"
        )
    return out


def _setup(kit: m.Kit) -> dict[str, Any]:
    setup: dict[str, Any] = {}
    if kit.install:
        setup["install"] = [
            {
                "command": c.argv[2] if c.argv[:2] == ("sh", "-c") else " ".join(c.argv),
                "user": c.user,
                **({"description": c.description} if c.description else {}),
            }
            for c in kit.install
        ]
    if kit.startup:
        setup["startup"] = [
            {
                "command": list(c.argv),
                "user": c.user,
                **({"background": True} if c.background else {}),
                **({"description": c.description} if c.description else {}),
            }
            for c in kit.startup
        ]
    if kit.files:
        setup["files"] = [
            {
                "path": f.path,
                "content": f.content,
                "mode": f"{f.mode:04o}",
                **({"onlyIfMissing": True} if not f.overwrite else {}),
                **({"description": f.description} if f.description else {}),
            }
            for f in kit.files
        ]
    return setup
