"""Step 1 of a v3 kit's conversion (SPEC-v3 §7.1.1): every declaration is validated,
optional ones and every member of a group included, with its block's arity (singletons
once, an instance key once, no exact duplicates), before selection looks at any."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandkit.kits import spec_v3 as v3
from sandkit.kits.fields import SpecModel
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path


@dataclass
class Entry:
    """One capability request, validated: its config model if sandkit implements it."""

    cap: v3.Capability
    path: Path
    name: str
    version: int
    sandbox: bool  # in the com.docker.sandbox namespace
    config: SpecModel | None = None

    @property
    def implemented(self) -> bool:
        key = (self.name, self.version)
        return self.sandbox and key in v3.CONFIGS and key not in v3.NOT_IMPLEMENTED


@dataclass
class Construct:
    """An ordinary entry or a group: what selection keeps or skips as a whole."""

    path: Path
    optional: bool
    entries: list[Entry]
    group: str | None = None  # the group's label, None for an ordinary entry


def where(path: Path) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def declarations(items: list[dict[str, Any]], ctx: Context) -> list[Construct]:
    top: list[Entry] = []
    constructs: list[Construct] = []
    for i, item in enumerate(items):
        path: Path = ("capabilities", i)
        if isinstance(item, dict) and "group" in item:
            if len(item) > 1:
                ctx.error(
                    path,
                    "an item is a capability ('type: …') or a group ('group: …'), not both",
                    at_key=True,
                )
                continue
            group = ctx.validate(v3.CapabilityGroup, item, path)
            if group is None:
                continue
            members = _members(group.group.capabilities, (*path, "group"), ctx)
            _arity(members, ctx)
            constructs.append(
                Construct(path, group.group.optional, members, group.group.name or where(path))
            )
        else:
            entry = _entry(item, path, ctx)
            if entry is not None:
                top.append(entry)
                constructs.append(Construct(path, entry.cap.optional, [entry]))
    _arity(top, ctx)
    return constructs


def _members(raw: list[Any], path: Path, ctx: Context) -> list[Entry]:
    members = []
    for j, item in enumerate(raw):
        at: Path = (*path, "capabilities", j)
        if isinstance(item, dict) and "group" in item:
            ctx.error((*at, "group"), "groups do not nest: list the capabilities here", at_key=True)
            continue
        if isinstance(item, dict) and "optional" in item:
            ctx.error(
                (*at, "optional"),
                "a group member may not state 'optional' (even false): the group's own "
                "'optional' decides for all its members",
                at_key=True,
            )
        entry = _entry(item, at, ctx)
        if entry is not None:
            members.append(entry)
    return members


def _entry(item: Any, path: Path, ctx: Context) -> Entry | None:
    cap = ctx.validate(v3.Capability, item, path)
    if cap is None:
        return None
    parsed = v3.parse_capability_type(cap.type)
    assert parsed is not None  # the model checked it
    ns, name, version = parsed
    entry = Entry(cap, path, name, version, ns == v3.SANDBOX_NAMESPACE)
    if entry.sandbox and (name, version) in v3.CONFIGS:  # checked even where not claimed
        entry.config = ctx.validate(v3.CONFIGS[(name, version)], cap.config, (*path, "config"))
    elif entry.sandbox and name in v3.CONFIG_LESS and cap.config:
        ctx.error((*path, "config"), f"'{cap.type}' takes no config", at_key=True)
    return entry


def instance_keys(entry: Entry) -> list[tuple[str, ...]]:
    """SPEC-v3 §7.1: what makes two requests of an instance-shaped type the same one."""
    c = entry.config
    if isinstance(c, v3.CredentialConfig):
        phases = [c.phase] if isinstance(c.phase, str) else c.phase
        return [("credential", c.service, p) for p in phases]
    if isinstance(c, v3.VolumeConfig):
        return [("volume", c.path)]
    if isinstance(c, v3.PortConfig):
        return [("port", str(c.container), c.transport)]
    if isinstance(c, v3.AgentSkill):
        return [("skill", c.effective_name)]
    if isinstance(c, v3.AgentSkills):
        return [("skills directory", c.path)]
    if isinstance(c, v3.HostMount):
        # host-mount@1 and volume@1 share the cleaned path as their storage key.
        return [("volume", c.path)]
    return []


def _arity(block: list[Entry], ctx: Context) -> None:
    """Singletons once per block; an instance key once per block; no exact duplicates."""
    singles: dict[str, Entry] = {}
    keys: dict[tuple[str, ...], Entry] = {}
    exact: dict[str, Entry] = {}
    for entry in block:
        if entry.sandbox and entry.name in v3.SINGLETONS:
            first = singles.get(entry.name)
            if first is not None:
                if first.version != entry.version:
                    message = (
                        f"'{entry.cap.type}' and '{first.cap.type}' are exclusive (first at "
                        f"{where(first.path)}): state one of them"
                    )
                else:
                    message = (
                        f"capability '{entry.name}' may appear only once (first at "
                        f"{where(first.path)})"
                    )
                ctx.error((*entry.path, "type"), message)
                continue
            singles[entry.name] = entry
        for key in instance_keys(entry):
            first = keys.get(key)
            if first is not None:
                ctx.error(
                    (*entry.path, "config"),
                    f"{key[0]} '{' '.join(key[1:])}' is declared twice in one block (first at "
                    f"{where(first.path)}); keep one",
                    at_key=True,
                )
            keys.setdefault(key, entry)
        if not entry.implemented and entry.config is None:
            same = repr((entry.cap.type, entry.cap.config))
            if same in exact:
                ctx.error(
                    (*entry.path, "type"),
                    f"exact duplicate of {where(exact[same].path)}; keep one",
                )
            exact.setdefault(same, entry)
