"""Guest image variants: the docker variant is cached under its own key, the base image's
key is what it was before variants existed, and the kits pick the variant."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sandkit import hostconfig
from sandkit.errors import SetupError
from sandkit.kits import resolve
from sandkit.kits.images import image_variant, needs_docker
from sandkit.vm import image as images
from sandkit.vm import imagebuild
from sandkit.vm.initramfs import WANTED
from tests.conftest import WriteKit

KERNEL = ("linux-image-6.1.0-99-cloud-amd64", "6.1.999-1")
MIRRORS = ["http://mirror.test/debian", "http://mirror.test/debian-security"]


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What the key reads from apt and the host, fixed (no apt-cache run)."""
    monkeypatch.setattr(images, "kernel_package", lambda: KERNEL)
    monkeypatch.setattr(hostconfig, "apt_mirrors", lambda: list(MIRRORS))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def base_inputs_before_variants() -> dict[str, object]:
    """The base key's inputs exactly as builder 2 wrote them before variants existed."""
    busybox = images.BUSYBOX
    return {
        "builder": "2",
        "suite": "bookworm",
        "sources": [
            "deb http://mirror.test/debian bookworm main",
            "deb http://mirror.test/debian bookworm-updates main",
            "deb http://mirror.test/debian-security bookworm-security main",
        ],
        "packages": images.PACKAGES,
        "kernel": list(KERNEL),
        "disk": "4G",
        "busybox": hashlib.sha256(busybox.read_bytes()).hexdigest() if busybox.exists() else None,
        "guest": {
            n: hashlib.sha256(d).hexdigest() for n, d in sorted(images.guest_files().items())
        },
        "modules": WANTED,
    }


@pytest.mark.usefixtures("apt")
def test_the_base_key_is_unchanged_and_the_docker_key_is_its_own() -> None:
    base_key, base = images.image_key()
    expected = base_inputs_before_variants()
    assert json.loads(json.dumps(base)) == json.loads(json.dumps(expected))
    digest = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()[:20]
    assert base_key == digest  # existing caches stay valid
    docker_key, docker = images.image_key(images.DOCKER)
    assert docker_key != base_key
    assert {k: v for k, v in docker.items() if k in base} == base
    assert docker["variant"] == "docker"
    assert "docker.io" in docker["variant_packages"]  # type: ignore[operator]
    assert "busybox-static" in docker["variant_packages"]  # type: ignore[operator]


@pytest.mark.usefixtures("apt")
def test_each_variant_remembers_its_key_in_its_own_file(tmp_path: Path) -> None:
    base_key, _ = images.image_key()
    docker_key, _ = images.image_key(images.DOCKER)
    cache = tmp_path / "cache" / "sandkit"
    assert json.loads((cache / "image-key.json").read_text())["key"] == base_key
    assert json.loads((cache / "image-key-docker.json").read_text())["key"] == docker_key
    # Asked again, each variant answers its own key from its memo.
    assert images.image_key(images.DOCKER)[0] == docker_key
    assert images.image_key()[0] == base_key


@pytest.mark.usefixtures("apt")
def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(SetupError, match="no guest image variant 'podman'"):
        images.image_key("podman")


def test_the_manifest_names_the_variant(tmp_path: Path) -> None:
    for variant, inputs in (("base", {}), ("docker", {"variant": "docker"})):
        root = tmp_path / variant
        root.mkdir()
        for name in images.FILES:
            (root / name).write_bytes(b"x")
        manifest = {
            "key": variant,
            "inputs": inputs,
            "kernel_release": "6.1",
            "files": dict.fromkeys(images.FILES, 1),
        }
        (root / "manifest.json").write_text(json.dumps(manifest))
        loaded = images.load(root)
        assert loaded is not None and loaded.variant == variant


def test_the_docker_hooks_bring_the_kernels_modules_and_the_docker_group() -> None:
    hooks = imagebuild.docker_hooks(Path("/w/kernel/lib/modules"), "6.1.0-9-cloud-amd64")
    assert (
        "sync-in /w/kernel/lib/modules/6.1.0-9-cloud-amd64 /usr/lib/modules/6.1.0-9-cloud-amd64"
        in hooks
    )
    assert 'chroot "$1" /usr/sbin/depmod 6.1.0-9-cloud-amd64' in hooks
    assert 'chroot "$1" usermod -aG docker agent' in hooks


MIXIN = """
schemaVersion: "2"
kind: mixin
name: {name}
"""
AGENT = """
schemaVersion: "2"
kind: sandbox
name: agent
sandbox:
  image: {image}
  entrypoint: [bash]
"""


@pytest.mark.parametrize(
    ("image", "mixins", "variant"),
    [
        ("docker/sandbox-templates:shell", [], "base"),
        ("docker/sandbox-templates:shell-docker", [], "docker"),
        ("docker/sandbox-templates:claude-code-docker", [], "docker"),
        ("docker/sandbox-templates:shell", ["docker"], "docker"),
        ("docker/sandbox-templates:shell", ["dockerish"], "base"),
        ("ghcr.io/me/docker:1", [], "base"),
    ],
)
def test_the_kits_choose_the_variant(
    write_kit: WriteKit, image: str, mixins: list[str], variant: str
) -> None:
    agent = write_kit(AGENT.format(image=image), "agent")
    kits = [str(write_kit(MIXIN.format(name=m), m)) for m in mixins]
    sandbox = resolve(str(agent), kits).sandbox
    assert image_variant(sandbox) == variant
    assert needs_docker(sandbox) is (variant == "docker")


def test_the_builtin_docker_kit_selects_docker() -> None:
    resolution = resolve("shell", ["docker"])
    assert image_variant(resolution.sandbox) == "docker" and resolution.warnings == ()
    assert image_variant(resolve("shell").sandbox) == "base"
