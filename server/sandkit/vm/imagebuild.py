"""The steps of a guest image's build (vm/image.py runs them in order): the kernel from
Debian's package, unpacked to the vmlinux that PVH boots; the root filesystem as a tarball
(mmdebstrap, no root needed); the ext4 made from it inside a user namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sandkit.errors import SetupError
from sandkit.guestuser import AGENT_UID, AGENT_USER
from sandkit.vm import userns

LZ4_MAGIC = b"\x02\x21\x4c\x18"


def run(argv: list[str], log: Path | None = None, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SetupError(f"{argv[0]} is not installed: run scripts/setup") from None
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SetupError(f"image build step failed: {' '.join(argv[:3])} …\n{tail}")
    return done.stdout


def kernel(name: str, work: Path, log: Path) -> str:
    """Download and unpack the kernel package ``name`` in ``work``: its release."""
    run(["apt-get", "download", "-q", name], log, cwd=work)
    deb = next(work.glob(f"{name}_*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(work / "kernel")], log)
    deb.unlink()
    vmlinuz = next((work / "kernel" / "boot").glob("vmlinuz-*"))
    release = vmlinuz.name.removeprefix("vmlinuz-")
    (work / "vmlinux").write_bytes(extract_vmlinux(vmlinuz.read_bytes(), work))
    return release


def extract_vmlinux(bzimage: bytes, work: Path) -> bytes:
    """The uncompressed kernel inside a bzImage (PVH boot skips the decompressor: ~0.9 s
    under TCG). Debian compresses with LZ4; anything else boots as the bzImage itself."""
    start = bzimage.find(LZ4_MAGIC)
    if start < 0:
        return bzimage
    packed = work / "vmlinux.lz4"
    packed.write_bytes(bzimage[start:])
    done = subprocess.run(["lz4", "-dc", str(packed)], capture_output=True, check=False)
    packed.unlink()
    # lz4 complains about the bzImage trailer after the stream; the ELF is what matters.
    if not done.stdout.startswith(b"\x7fELF"):
        return bzimage
    return done.stdout


def docker_hooks(modules: Path, release: str) -> tuple[str, ...]:
    """mmdebstrap hooks for the docker variant: the kernel's modules (unpacked in
    ``modules``) copied to /lib/modules/<release> and indexed, so that modprobe finds
    overlay, bridge, br_netfilter, veth and the netfilter/NAT modules; the agent user in
    the docker group (docker.io's postinst made it)."""
    return (
        f'mkdir -p "$1/usr/lib/modules/{release}"',
        f"sync-in {modules / release} /usr/lib/modules/{release}",
        f'chroot "$1" /usr/sbin/depmod {release}',
        'chroot "$1" usermod -aG docker agent',
    )


AGENT_ROOT = "/usr/lib/sandkit"  # init.sh puts it on the agent's sys.path


def agent_hooks(package: Path) -> list[str]:
    """Hooks that copy the agent's package (``package``: its modules and an empty
    __init__.py) to AGENT_ROOT/sandkit/guest/, that empty __init__.py serving as
    sandkit's own too. One upload a file, by mmdebstrap itself: in unshare mode the hooks
    run as the namespace's root, a subordinate id that cannot read the user's files."""
    guest = f"{AGENT_ROOT}/sandkit/guest"
    copies = [(package / "__init__.py", f"{AGENT_ROOT}/sandkit/__init__.py")]
    copies += [(module, f"{guest}/{module.name}") for module in sorted(package.glob("*.py"))]
    hooks = [
        f'mkdir -p "$1{guest}"',
        f'chmod 0755 "$1{AGENT_ROOT}" "$1{AGENT_ROOT}/sandkit" "$1{guest}"',
    ]
    for source, target in copies:
        hooks += [f"upload {source} {target}", f'chmod 0644 "$1{target}"']
    # Compiled now, not at each boot under TCG (a fresh sandbox's disk has no pycache).
    hooks.append(f'chroot "$1" python3 -m compileall -q {AGENT_ROOT}/sandkit')
    return hooks


def rootfs(
    target: Path,
    log: Path,
    suite: str,
    packages: tuple[str, ...],
    sources: list[str],
    agent: Path,
    extra_hooks: tuple[str, ...] = (),
) -> None:
    """The root filesystem as a tarball: ownership, modes and device nodes are recorded
    in it, so that no step needs root (mmdebstrap's unshare mode writes the same bytes as
    its root mode). ``agent``: the guest agent's package (a folder), copied in;
    ``extra_hooks``: a variant's customize hooks, run after the base's."""
    hooks = [
        # The same text as before the constant: the image's key does not hash this file.
        f'chroot "$1" useradd --create-home --uid {AGENT_UID} --shell /bin/bash {AGENT_USER}',
        'echo "agent ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/agent"',
        'chmod 0440 "$1/etc/sudoers.d/agent"',
        # sudo keeps the proxy settings, as sbx's images do
        "echo 'Defaults env_keep += \"HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy\"' "
        '> "$1/etc/sudoers.d/proxy" && chmod 0440 "$1/etc/sudoers.d/proxy"',
        *agent_hooks(agent),
        # sh is bash, as in sbx's templates: kits' string commands run as `sh -c` and
        # published ones use bash syntax there (`set -o pipefail`).
        'ln -sf bash "$1/usr/bin/sh"',
        'echo sandbox > "$1/etc/hostname"',
        'printf "127.0.0.1 localhost\\n::1 localhost\\n" > "$1/etc/hosts"',
        'rm -f "$1/etc/machine-id" && : > "$1/etc/machine-id"',
        # No DNS in the guest: the proxy resolves names (HTTP_PROXY is set for everything).
        'echo "# sandkit: the proxy resolves names; there is no DNS server here" > "$1/etc/resolv.conf"',
        *extra_hooks,
    ]
    argv = [
        "mmdebstrap",
        # Root builds as root; anyone else in a user namespace mapped onto their
        # subordinate ids (hostcheck made sure they have them).
        "--mode=root" if os.geteuid() == 0 else "--mode=unshare",
        "--format=tar",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        *(f"--customize-hook={h}" for h in hooks),
        suite,
        str(target),
        *sources,
    ]
    run(argv, log)


def _in_namespace(script: str, *args: str) -> list[str]:
    """argv that runs the shell ``script`` as root: directly for root; for anyone else as
    root of a user namespace with their subordinate ids mapped (files keep the tarball's
    owners, as seen from inside)."""
    argv = ["sh", "-ec", script, "sh", *args]
    return argv if os.geteuid() == 0 else userns.as_namespace_root(argv)


# The tree is unpacked, made into ext4 and removed in one go, inside the namespace: from
# outside, its files belong to subordinate ids the user cannot remove. /dev is left empty
# (the guest mounts devtmpfs there, and device nodes cannot be made in a user namespace).
EXT4 = """
tree="$1/rootfs"; trap 'rm -rf "$tree"' EXIT
mkdir "$tree"
tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -xpf "$2" --exclude='./dev/*'
"$5" -q -F -t ext4 -L skroot -d "$tree" "$3" "$4"
"""


def ext4(tarball: Path, out: Path, size: str, log: Path) -> None:
    """``tarball`` as an ext4 image (e2fsprogs 1.47.0's mke2fs -d takes a folder, not a
    tarball)."""
    # In /usr/sbin: not on an ordinary user's PATH on Debian.
    mke2fs = shutil.which("mke2fs", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if mke2fs is None:
        raise SetupError("mke2fs (Debian's e2fsprogs) is missing: run scripts/setup")
    run(_in_namespace(EXT4, str(out.parent), str(tarball), str(out), size, mke2fs), log)
