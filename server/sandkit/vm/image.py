"""The guest image: a Debian bookworm root filesystem (mmdebstrap, ext4 made with
`mke2fs -d`, no loop mounts), the kernel from Debian's linux-image-cloud-amd64 (booted as
an uncompressed vmlinux through PVH), and our initramfs.

Images are cached under $XDG_CACHE_HOME/sandkit/images/<key>, where the key hashes every
input (mirror, packages, kernel version, guest code, this builder's version). A build
happens in a temporary folder renamed into place at the end, and the manifest written
last lists every file with its size: a partial or damaged image is rebuilt, never booted.

Nothing here needs root: as anyone else, mmdebstrap runs in its unshare mode and the
ext4 image is made inside a user namespace (hostcheck says what the host must allow). On
a machine shared by several people an admin may build the image once into the system
cache, /var/cache/sandkit/images/<key> (`sudo sandkit image build --system`); a user
whose own cache lacks the key uses it, read-only, but only if root owns every part of it
and nobody else can write to it: never another user's files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sandkit import hostconfig
from sandkit.errors import SetupError
from sandkit.paths import cache_dir
from sandkit.vm import hostcheck, imagebuild, userns
from sandkit.vm.imagebuild import extract_vmlinux, run
from sandkit.vm.initramfs import WANTED, build_initramfs, module_order

__all__ = [
    "BASE",
    "DOCKER",
    "FILES",
    "VARIANTS",
    "Image",
    "Progress",
    "ensure_image",
    "extract_vmlinux",
    "load",
    "trusted",
]

BUILDER_VERSION = "2"
SUITE = "bookworm"
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = Path("/bin/busybox")
DISK_SIZE = "4G"
PACKAGES = (
    "usr-is-merged",
    "bash",
    "coreutils",
    "util-linux",
    "python3",
    "python3-venv",  # Debian's Python refuses pip installs outside a venv (PEP 668)
    "ca-certificates",
    "curl",
    "git",
    "sudo",
    "procps",
    "iproute2",
    "less",
    "nodejs",
    "npm",
    "netbase",
    "openssh-client",
)
FILES = ("vmlinux", "initrd.cpio", "rootfs.ext4")

# Image variants: the base, and the base with Docker Engine (bookworm's docker.io 20.10 and
# docker-compose 1.29; the `docker compose` plugin is not in bookworm). The docker variant
# also carries the kernel's modules in /lib/modules, for dockerd's overlay, bridge, veth,
# netfilter and NAT; busybox-static is there for FROM-scratch images.
BASE = "base"
DOCKER = "docker"
VARIANT_PACKAGES: dict[str, tuple[str, ...]] = {
    BASE: (),
    DOCKER: (
        "docker.io",
        "containerd",
        "runc",
        "docker-compose",
        "iptables",
        "kmod",
        "busybox-static",
    ),
}
VARIANTS = tuple(VARIANT_PACKAGES)

Progress = Callable[[str, int, int], None]  # (step, index, total)


@dataclass(frozen=True)
class Image:
    key: str
    path: Path
    kernel_release: str
    # One build's identity: two builds of a key are not byte-identical (mke2fs picks a
    # fresh UUID), and a golden snapshot is only good for the build it was saved on.
    build: str = ""
    variant: str = BASE

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.cpio"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs.ext4"


def guest_files() -> dict[str, bytes]:
    """The guest's code by file name: init.sh (the initramfs's /init) and every module of
    the agent's package (its __init__.py stays on the host: the image gets an empty one).
    Each is in the image key, so any change rebuilds the image."""
    pkg = resources.files("sandkit.guest")
    names = sorted(
        entry.name
        for entry in pkg.iterdir()
        if entry.name == "init.sh" or (entry.name.endswith(".py") and entry.name != "__init__.py")
    )
    return {name: pkg.joinpath(name).read_bytes() for name in names}


def write_agent(folder: Path, files: dict[str, bytes] | None = None) -> Path:
    """The agent's package as the image gets it, in ``folder``: its modules (``files``, else
    as they are now) and an empty __init__.py (the host's sandkit/__init__ imports more
    than the guest has)."""
    folder.mkdir()
    (folder / "__init__.py").write_bytes(b"")
    for name, data in (files if files is not None else guest_files()).items():
        if name.endswith(".py"):
            (folder / name).write_bytes(data)
    return folder


def kernel_package() -> tuple[str, str]:
    """The real kernel package behind the metapackage, and its version."""
    deps = run(["apt-cache", "depends", "--important", KERNEL_META])
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in deps.splitlines()
            if line.strip().startswith("Depends:")
        ),
        "",
    )
    if not name:
        raise SetupError(f"apt knows no {KERNEL_META}: run `apt-get update` (scripts/setup does)")
    policy = run(["apt-cache", "policy", name])
    version = next(
        (
            line.split(":", 1)[1].strip()
            for line in policy.splitlines()
            if line.strip().startswith("Candidate:")
        ),
        "",
    )
    return name, version


def sources() -> list[str]:
    mirrors = hostconfig.apt_mirrors()
    if not mirrors:
        raise SetupError(
            "no Debian mirror in /etc/apt/sources.list*: the guest image uses the host's"
        )
    out = []
    for url in mirrors:
        if "security" in url:
            out.append(f"deb {url} {SUITE}-security main")
        else:
            out += [f"deb {url} {SUITE} main", f"deb {url} {SUITE}-updates main"]
    return out


APT_STATE = (Path("/var/lib/apt/lists"), Path("/var/cache/apt/pkgcache.bin"))


def _fingerprint(variant: str = BASE) -> str:
    """What the key depends on that is cheap to read: if none of it changed, neither did
    the key, and the apt-cache calls (~1 s) are skipped."""
    parts: list[object] = [
        BUILDER_VERSION,
        WANTED,
        hostconfig.apt_mirrors(),
        sorted((n, hashlib.sha256(d).hexdigest()) for n, d in guest_files().items()),
    ]
    for path in (*APT_STATE, BUSYBOX):
        try:
            st = path.stat()
            parts.append([str(path), st.st_mtime_ns, st.st_size])
        except OSError:
            parts.append([str(path), None])
    if variant != BASE:  # the base's fingerprint stays what it was
        parts.append([variant, VARIANT_PACKAGES[variant]])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _check_variant(variant: str) -> None:
    if variant not in VARIANT_PACKAGES:
        raise SetupError(f"no guest image variant '{variant}' (known: {', '.join(VARIANTS)})")


def image_key(variant: str = BASE) -> tuple[str, dict[str, object]]:
    _check_variant(variant)
    name = "image-key.json" if variant == BASE else f"image-key-{variant}.json"
    memo = cache_dir() / name
    fingerprint = _fingerprint(variant)
    try:
        known = json.loads(memo.read_text())
        if known["fingerprint"] == fingerprint:
            return str(known["key"]), dict(known["inputs"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    key, inputs = _compute_key(variant)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "key": key, "inputs": inputs}))
    tmp.replace(memo)
    return key, inputs


def _compute_key(variant: str = BASE) -> tuple[str, dict[str, object]]:
    kernel, version = kernel_package()
    inputs: dict[str, object] = {
        "builder": BUILDER_VERSION,
        "suite": SUITE,
        "sources": sources(),
        "packages": PACKAGES,
        "kernel": [kernel, version],
        "disk": DISK_SIZE,
        "busybox": hashlib.sha256(BUSYBOX.read_bytes()).hexdigest() if BUSYBOX.exists() else None,
        "guest": {n: hashlib.sha256(d).hexdigest() for n, d in sorted(guest_files().items())},
        "modules": WANTED,  # the initramfs's drivers
    }
    if variant != BASE:  # added only for a variant: the base image's key does not move
        inputs["variant"] = variant
        inputs["variant_packages"] = VARIANT_PACKAGES[variant]
        inputs["rootfs_modules"] = True
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]
    return digest, inputs


SYSTEM_CACHE = Path("/var/cache/sandkit")


def images_dir(system: bool = False) -> Path:
    return (SYSTEM_CACHE if system else cache_dir()) / "images"


def trusted(path: Path, owner: int = 0) -> bool:
    """Whether the image folder ``path`` can be used by anyone: it, its files and every
    folder above it belong to ``owner`` (root) and nobody else may write to them; no
    link anywhere (above the cache, a root-owned sticky folder such as /tmp is fine)."""
    try:
        for name in (*FILES, "manifest.json"):
            st = (path / name).lstat()
            if not stat.S_ISREG(st.st_mode) or st.st_uid != owner or st.st_mode & 0o022:
                return False
        for i, folder in enumerate((path, *path.parents)):
            st = folder.lstat()
            if not stat.S_ISDIR(st.st_mode):
                return False
            inside = i <= 2  # the image, images/ and sandkit/: the cache itself
            if st.st_uid not in (owner, 0) or (inside and st.st_uid != owner):
                return False
            if st.st_mode & 0o022 and (inside or not st.st_mode & stat.S_ISVTX):
                return False
    except OSError:
        return False
    return True


def load(path: Path) -> Image | None:
    """The image at ``path`` if it is complete and intact, else None."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        for name in FILES:
            if (path / name).stat().st_size != manifest["files"][name]:
                return None
        return Image(
            manifest["key"],
            path,
            manifest["kernel_release"],
            str(manifest.get("build", "")),
            str(manifest.get("inputs", {}).get("variant", BASE)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_image(
    progress: Progress | None = None, system: bool = False, variant: str = BASE
) -> Image:
    """The cached image for the current inputs, built first if missing or damaged: in the
    user's cache, or with ``system`` (root only) in the system cache that others may use.
    ``variant``: BASE or DOCKER, each cached under its own key."""
    key, inputs = image_key(variant)
    final = images_dir(system) / key
    image = load(final)
    if image is not None:
        return image
    if not system:
        shared = images_dir(system=True) / key
        if trusted(shared) and (image := load(shared)) is not None:
            return image
    elif os.geteuid() != 0:
        raise SetupError(
            f"only root can build the system cache {SYSTEM_CACHE} that every user may use: "
            "sudo sandkit image build --system (or leave out --system to build your own)"
        )
    if final.exists():
        shutil.rmtree(final)  # partial or damaged: never boot it
    return build(key, inputs, final, progress or (lambda *_: None), shared=system, variant=variant)


def _guest_as_keyed(inputs: dict[str, object]) -> dict[str, bytes]:
    """The guest code, read once and checked against the key: a file edited since the
    key was computed must not be built into an image cached under the old key."""
    guest = guest_files()
    if {n: hashlib.sha256(d).hexdigest() for n, d in sorted(guest.items())} != inputs["guest"]:
        raise SetupError(
            "the guest code (sandkit/guest/) changed after the image key was computed: "
            "run the command again"
        )
    return guest


def _seal(work: Path, key: str, inputs: dict[str, object], release: str, shared: bool) -> None:
    """The build's manifest; for the system cache, modes that let everyone read it and
    root alone write it (see trusted())."""
    manifest = {
        "key": key,
        "inputs": inputs,
        "kernel_release": release,
        "build": uuid.uuid4().hex,
        "files": {n: (work / n).stat().st_size for n in FILES},
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if shared:
        for folder in (work.parent.parent, work.parent, work):
            folder.chmod(0o755)
        for name in (*FILES, "manifest.json", "build.log"):
            (work / name).chmod(0o644)


STEPS = (
    "download kernel",
    "build initramfs",
    "build root filesystem (mmdebstrap)",
    "make ext4 image",
)


def build(
    key: str,
    inputs: dict[str, object],
    final: Path,
    progress: Progress,
    shared: bool = False,
    variant: str = BASE,
) -> Image:
    if not BUSYBOX.exists():
        raise SetupError("/bin/busybox (Debian's busybox-static) is missing: run scripts/setup")
    if shutil.which("mmdebstrap") is None:
        raise SetupError("mmdebstrap is not installed: run scripts/setup")
    hostcheck.require()  # before anything is written: no half-built image
    guest = _guest_as_keyed(inputs)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=final.parent))
    log = work / "build.log"
    try:
        progress(STEPS[0], 0, len(STEPS))
        release = imagebuild.kernel(kernel_package()[0], work, log)
        progress(STEPS[1], 1, len(STEPS))
        modules = module_order(work / "kernel" / "lib" / "modules" / release)
        (work / "initrd.cpio").write_bytes(build_initramfs(BUSYBOX, guest["init.sh"], modules))
        progress(STEPS[2], 2, len(STEPS))
        tarball = work / "rootfs.tar"
        agent = write_agent(work / "agent", guest)
        extra: tuple[str, ...] = ()
        if variant == DOCKER:
            extra = imagebuild.docker_hooks(work / "kernel" / "lib" / "modules", release)
        packages = (*PACKAGES, *VARIANT_PACKAGES[variant])
        imagebuild.rootfs(tarball, log, SUITE, packages, sources(), agent, extra)
        progress(STEPS[3], 3, len(STEPS))
        imagebuild.ext4(tarball, work / "rootfs.ext4", DISK_SIZE, log)
        tarball.unlink()
        shutil.rmtree(work / "kernel")
        shutil.rmtree(agent)
        _seal(work, key, inputs, release, shared)
        try:
            work.replace(final)
        except OSError:
            # Another build of this key (a second sandkit at the same time) finished
            # first: its image is as good as ours, so ours goes.
            if load(final) is None:
                raise
            userns.remove_tree(work)
        progress("done", len(STEPS), len(STEPS))
    except BaseException:
        if work.exists():
            userns.remove_tree(work)  # with what a step left to subordinate ids
        raise
    image = load(final)
    if image is None:
        raise SetupError(f"the image built at {final} is damaged: run the command again")
    return image
