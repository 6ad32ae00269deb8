"""What the host must give an ordinary user before sandkit can run sandboxes for them.

Root needs nothing more than the Debian packages. Anyone else builds the guest image with
`mmdebstrap --mode=unshare` and runs virtiofsd in a user namespace (vm/userns.py), which
needs: user namespaces that unprivileged users may create, subordinate user and group ids
for the user (/etc/subuid, /etc/subgid), and newuidmap/newgidmap (Debian's uidmap) to map
them. Each missing piece is reported once, before any long step starts, as its cause and
the one command that fixes it.

The parsing and the map are pure; ``problems()`` reads the host."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandkit.errors import SetupError
from sandkit.guestuser import AGENT_UID

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
# The guest's ids that must exist in the namespace: root, the agent (1000), and the
# system users up to nobody (65534); mmdebstrap's unshare mode wants 65536 as well.
NEEDED = 65536
FIRST_SUGGESTED = 100000  # where useradd starts its own ranges (SUB_UID_MIN)


@dataclass(frozen=True)
class IdRange:
    start: int
    count: int

    @property
    def end(self) -> int:  # last id, inclusive (usermod's START-END)
        return self.start + self.count - 1


def parse_ranges(text: str, name: str | None, ident: int) -> list[IdRange]:
    """The ranges /etc/subuid (or /etc/subgid) gives to the user ``name`` / id ``ident``;
    lines may name the user or give the number (see subuid(5))."""
    found = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        owner, start, count = parts
        if owner not in (name, str(ident)):
            continue
        try:
            found.append(IdRange(int(start), int(count)))
        except ValueError:
            continue
    return found


def usable(ranges: list[IdRange], needed: int = NEEDED) -> IdRange | None:
    return next((r for r in ranges if r.count >= needed and r.start > 0), None)


def free_range(*files: str, count: int = NEEDED) -> IdRange:
    """A range of ``count`` ids that no line of the given subuid/subgid texts uses, at or
    after 100000 and aligned to ``count`` (as useradd picks them)."""
    taken = []
    for text in files:
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                taken.append(IdRange(int(parts[1]), int(parts[2])))
    start = FIRST_SUGGESTED
    while any(start <= t.end and t.start <= start + count - 1 for t in taken):
        start += count
    return IdRange(start, count)


def guest_map(own: int, sub: IdRange) -> list[tuple[int, int, int]]:
    """(inside, outside, count) lines for newuidmap/newgidmap: the guest's agent (1000) is
    the user themself, so what the agent writes in the share is the user's on the host;
    every other guest id, root included, is one of the user's subordinate ids."""
    if sub.count < NEEDED:
        raise ValueError(f"{sub} is smaller than {NEEDED} ids")
    return [
        (0, sub.start, AGENT_UID),
        (AGENT_UID, own, 1),
        (AGENT_UID + 1, sub.start + AGENT_UID, sub.count - AGENT_UID),
    ]


# -- the host -----------------------------------------------------------------------------------
def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (e.g. in a container)
        return None


def subordinate_ids() -> tuple[IdRange | None, IdRange | None]:
    """The user's usable subordinate uid and gid ranges (None where missing)."""
    uid, name = os.getuid(), _name(os.getuid())
    return (
        usable(parse_ranges(_read(SUBUID), name, uid)),
        usable(parse_ranges(_read(SUBGID), name, uid)),
    )


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def _userns_problem() -> str | None:
    """Why this user cannot make a user namespace and use it, or None if they can."""
    if _sysctl("kernel.unprivileged_userns_clone") == "0":
        return (
            "user namespaces are turned off for users other than root "
            "(kernel.unprivileged_userns_clone=0). Fix, as root: "
            "sysctl -w kernel.unprivileged_userns_clone=1 "
            "(and put that setting in /etc/sysctl.d/ to keep it)"
        )
    if _sysctl("user.max_user_namespaces") == "0":
        return (
            "user namespaces are turned off (user.max_user_namespaces=0). Fix, as root: "
            "sysctl -w user.max_user_namespaces=15000 (and put it in /etc/sysctl.d/)"
        )
    if _sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
        return (
            "AppArmor keeps users other than root from using user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns=1). Fix, as root: "
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
            "(or give sandkit's Python an AppArmor profile with `userns,`)"
        )
    # The settings above are the usual causes; a real namespace (with a mount inside, which
    # an AppArmor restriction or a seccomp filter would refuse) is the proof.
    try:
        done = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot try a user namespace (unshare, from util-linux): {exc}"
    if done.returncode != 0:
        return (
            "this user cannot create a user namespace: "
            f"{done.stderr.strip() or 'unshare failed'}. Check the kernel's "
            "user namespace settings (sysctl user.max_user_namespaces) and any "
            "AppArmor, SELinux or seccomp policy that denies unshare(CLONE_NEWUSER)"
        )
    return None


def _subid_problem() -> str | None:
    uid_range, gid_range = subordinate_ids()
    if uid_range is not None and gid_range is not None:
        return None
    name = _name(os.getuid())
    missing = " and ".join(
        f for f, r in ((str(SUBUID), uid_range), (str(SUBGID), gid_range)) if r is None
    )
    free = free_range(_read(SUBUID), _read(SUBGID))
    who = name or f"uid {os.getuid()}"
    if name is not None:
        fix = f"usermod --add-subuids {free.start}-{free.end} --add-subgids {free.start}-{free.end} {name}"
    else:  # usermod needs a login name; the files also take the number
        fix = f"echo {os.getuid()}:{free.start}:{free.count} | tee -a {SUBUID} {SUBGID}"
    return (
        f"{who} has no subordinate ids of its own ({NEEDED} or more) in {missing}: the guest "
        f"image build and the workspace share map the guest's users onto them. Fix, as root: {fix}"
    )


def _tools_problem() -> str | None:
    missing = [t for t in ("newuidmap", "newgidmap") if shutil.which(t) is None]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} (Debian's uidmap) are missing: they map the guest's users "
        "into a user namespace. Fix: run scripts/setup, or as root: apt-get install uidmap"
    )


@functools.cache
def problems() -> tuple[str, ...]:
    """Each prerequisite of running sandboxes that this user lacks (none for root)."""
    if os.geteuid() == 0:
        return ()
    found = [_tools_problem(), _userns_problem(), _subid_problem()]
    return tuple(p for p in found if p is not None)


def require() -> None:
    """Raise one SetupError naming every missing prerequisite and its fix."""
    found = problems()
    if not found:
        return
    who = _name(os.getuid()) or f"uid {os.getuid()}"
    lines = "\n".join(f"- {p}" for p in found)
    raise SetupError(f"sandboxes cannot run as {who} on this machine yet:\n{lines}")


def subordinate_range(kind: str) -> IdRange:
    """The user's subordinate uid ("u") or gid ("g") range, or a SetupError saying how
    to get one."""
    uid_range, gid_range = subordinate_ids()
    found = uid_range if kind == "u" else gid_range
    if found is None:
        problem = _subid_problem()
        raise SetupError(problem or "no subordinate ids")
    return found


def kvm_problem() -> str | None:
    """Why /dev/kvm cannot be used by this user, or None (it is optional: TCG runs
    everything; this is asked only when KVM was asked for)."""
    kvm = Path("/dev/kvm")
    if not kvm.exists():
        return (
            "/dev/kvm does not exist: the kernel has no KVM here (load kvm_intel or "
            "kvm_amd, or leave SANDKIT_ACCEL unset to use TCG)"
        )
    if os.access(kvm, os.R_OK | os.W_OK):
        return None
    who = _name(os.getuid()) or str(os.getuid())
    return (
        f"/dev/kvm is not accessible to {who}. Fix, as root: usermod -aG kvm {who} "
        "(then log in again), or leave SANDKIT_ACCEL unset to use TCG"
    )


@functools.cache
def host_memory_mib() -> int | None:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def check_shape(cpus: int, memory_mib: int) -> None:
    """A VM shape this host can run: no more virtual CPUs than host CPUs, and guest memory
    below the host's (checked before any image build or snapshot starts)."""
    host_cpus = len(os.sched_getaffinity(0))
    if cpus > host_cpus:
        raise SetupError(
            f"--cpus {cpus}: this machine gives sandkit {host_cpus} CPU(s); "
            f"use --cpus {host_cpus} or fewer"
        )
    total = host_memory_mib()
    if total is not None and memory_mib >= total:
        raise SetupError(
            f"--memory {memory_mib}m is not below this machine's {total} MiB of memory; "
            f"use --memory {max(256, total // 2)}m or less"
        )


def main() -> int:
    """`python -m sandkit.vm.hostcheck` (scripts/setup): say what is missing, exit 1 if
    anything is."""
    try:
        require()
    except SetupError as exc:
        print(exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
