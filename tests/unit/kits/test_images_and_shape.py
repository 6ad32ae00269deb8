"""A kit's image and resources: which guest image and shape a sandbox gets, and why."""

from __future__ import annotations

import pytest

from sandkit.kits import load_kit, resolve
from sandkit.kits.images import ImageKind, classify, image_variant
from sandkit.kits.model import Resources
from sandkit.kits.shape import choose, default_cpus, default_memory_mib
from tests.conftest import WriteKit


@pytest.mark.parametrize(
    "image",
    [
        "docker/sandbox-templates:shell",
        "docker/sandbox-templates:claude-code",
        "docker/sandbox-templates:codex",
        "docker/sandbox-templates:gemini",
        "docker/sandbox-templates:opencode",
        "docker.io/docker/sandbox-templates:shell",
        "docker/sandbox-templates:shell@sha256:" + "a" * 64,
    ],
)
def test_sbx_templates_are_the_base_image(image: str) -> None:
    assert classify(image).kind is ImageKind.BASE


@pytest.mark.parametrize(
    "image",
    ["docker/sandbox-templates:shell-docker", "docker/sandbox-templates:claude-code-docker"],
)
def test_docker_templates_need_the_base_with_docker(image: str) -> None:
    assert classify(image).kind is ImageKind.BASE_DOCKER


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/me/agent:1",
        "docker/sandbox-templates",  # no tag: latest, which sbx does not publish
        "docker/sandbox-templates:mystery",
        "evil/sandbox-templates:shell",
        "localhost:5000/docker/sandbox-templates:shell",
        "docker/sandbox-templates:foo-docker",
    ],
)
def test_any_other_image_is_not_used_and_says_so(image: str) -> None:
    choice = classify(image)
    assert choice.kind is ImageKind.UNUSED
    assert "sandkit builds its guest from Debian; this kit's image is not used" in choice.why


def test_no_image_is_the_base() -> None:
    assert classify(None).kind is ImageKind.BASE


V1 = """
schemaVersion: "1"
name: v1img
kind: agent
agent:
  image: {image}
  entrypoint: {{run: [bash]}}
"""
V2 = """
schemaVersion: "2"
kind: sandbox
name: v2img
sandbox:
  image: {image}
  entrypoint: [bash]
"""


@pytest.mark.parametrize(("template", "line"), [(V1, 5), (V2, 5)])
def test_validate_warns_on_an_unused_image_at_its_line(
    write_kit: WriteKit, template: str, line: int
) -> None:
    kit = write_kit(template.format(image="quay.io/x/y:1"))
    # (v1's 'agent:' also draws a "legacy syntax" warning, not about the image)
    (warning,) = [w for w in load_kit(kit).warnings if w.code != "legacy"]
    assert warning.span.line + 1 == line and warning.file == str(kit / "spec.yaml")
    assert "this kit's image is not used ('quay.io/x/y:1')" in warning.message
    assert "install commands" in warning.message  # what to do instead


@pytest.mark.parametrize("template", [V1, V2])
def test_a_template_image_loads_without_warning(write_kit: WriteKit, template: str) -> None:
    loaded = load_kit(write_kit(template.format(image="docker/sandbox-templates:shell")))
    assert [w for w in loaded.warnings if w.code != "legacy"] == []


def test_a_docker_image_loads_without_warning_and_selects_docker(write_kit: WriteKit) -> None:
    kit = write_kit(V2.format(image="docker/sandbox-templates:shell-docker"))
    resolution = resolve(str(kit))
    assert resolution.warnings == ()
    assert image_variant(resolution.sandbox) == "docker"


def test_resources_of_every_version_reach_the_agent(write_kit: WriteKit) -> None:
    v1 = write_kit(
        'schemaVersion: "1"\nname: a\nkind: agent\nagent:\n  image: docker/sandbox-templates:shell\n'
        "  resources: {cpu: 2, memoryMB: 3072}\n",
        "v1",
    )
    v2 = write_kit(
        'schemaVersion: "2"\nkind: sandbox\nname: b\nsandbox:\n'
        "  image: docker/sandbox-templates:shell\n  resources: {cpu: 2, memory: 3g}\n",
        "v2",
    )
    v3 = write_kit(
        'schemaVersion: "3"\nkind: workload\ncapabilities:\n'
        "  - type: com.docker.sandbox/resources@1\n    config: {cpu: 2, memory: 3GiB}\n",
        "v3",
    )
    for kit in (v1, v2, v3):
        agent = resolve(str(kit)).sandbox.agent
        assert agent.resources == Resources(cpus=2, memory_bytes=3 << 30), kit


def test_flags_win_over_the_kit_which_wins_over_the_default() -> None:
    kit = Resources(cpus=2, memory_bytes=3 << 30)
    shape = choose(None, None, kit, "k", host_cpus=8, host_memory_mib=32768)
    assert (shape.cpus, shape.memory_mib) == (2, 3072)
    assert shape.cpus_why == "kit 'k' resources (2 CPU)" and shape.notes == ()
    flags = choose(4, 1024, kit, "k", host_cpus=8, host_memory_mib=32768)
    assert (flags.cpus, flags.memory_mib, flags.cpus_why, flags.memory_why) == (
        4,
        1024,
        "--cpus",
        "--memory",
    )
    plain = choose(None, None, Resources(), "k", host_cpus=8, host_memory_mib=32768)
    assert (plain.cpus, plain.memory_mib) == (7, 8192)


@pytest.mark.parametrize(("host_cpus", "cpus"), [(1, 1), (2, 1), (3, 2), (16, 15)])
def test_default_cpus_are_the_hosts_minus_one(host_cpus: int, cpus: int) -> None:
    assert default_cpus(host_cpus) == cpus


@pytest.mark.parametrize(
    ("host", "mib"), [(2048, 1024), (24 << 10, 8192), (64 << 10, 8192), (300, 256), (None, 1024)]
)
def test_default_memory_is_half_the_hosts_up_to_8_gib(host: int | None, mib: int) -> None:
    assert default_memory_mib(host) == mib


def test_fractional_cpus_round_up_and_a_greedy_kit_gets_what_the_host_has() -> None:
    half = choose(None, None, Resources(cpus=0.5), "k", host_cpus=4, host_memory_mib=8192)
    assert half.cpus == 1
    greedy = choose(
        None, None, Resources(cpus=64, memory_bytes=64 << 30), "big", 4, host_memory_mib=8192
    )
    assert (greedy.cpus, greedy.memory_mib) == (4, 4096)
    assert greedy.notes == (
        "kit 'big' asks for 64 CPUs; this machine gives sandkit 4: using 4 (give --cpus to choose)",
        "kit 'big' asks for 65536 MiB of memory; this machine has 8192 MiB: using 4096 MiB, "
        "half of it (give --memory to choose)",
    )
