"""What an agent kit's image reference means to sandkit (pure).

sbx runs each agent in a container image; sandkit boots one guest it builds from Debian
and installs the agent with the kit's install commands. Docker's sbx templates are that
Debian base plus an agent, so they map to sandkit's base image; the ``-docker`` variants
map to its image variant with Docker Engine (vm/image.py DOCKER), as does the ``docker``
mixin kit; any other image is not used, and says so (v1 ``agent.image``, v2
``sandbox.image``; a v3 workload's image is its own recipe, which convert_v3 reports)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandkit.kits.model import ResolvedSandbox
    from sandkit.kits.validation import Context
    from sandkit.kits.yamlpos import Path

TEMPLATES = "docker/sandbox-templates"
# Docker's hardened builds of the same templates (the official v3 kits start FROM them).
HARDENED_TEMPLATES = "dhi.io/sbx-templates"
# The templates sbx publishes: a shell, and one per agent it ships.
TEMPLATE_TAGS = frozenset(
    {
        "shell",
        "claude-code",
        "codex",
        "gemini",
        "opencode",
        "copilot",
        "cursor",
        "qwen",
        "aider",
        "kiro",
        "docker-agent",
        "cagent",
        "amp",
        "droid",
        "goose",
        "crush",
    }
)
# A template's agent → sandkit's built-in kit of that agent: a v3 workload FROM the template
# gets that kit's install steps and its command as the image's default (kits/convert_v3.py).
TEMPLATE_KITS = {
    "claude-code": "claude",
    "codex": "codex",
    "gemini": "gemini",
    "opencode": "opencode",
    "copilot": "copilot",
    "qwen": "qwen",
    "aider": "aider",
}
BASE = "sandkit base (Debian, built by sandkit)"
BASE_DOCKER = "sandkit base with Docker"
NEEDS_IMAGE = "needs-image"  # a warning code: the kit needs an image sandkit lacks
# The mixin that asks for Docker Engine (kits/docker, or a kit of one's own by that name),
# and the guest image variants, as vm/image.py names them (kits/ may not import vm/).
DOCKER_KIT = "docker"
VARIANT_BASE = "base"
VARIANT_DOCKER = "docker"
UNUSED_MESSAGE = "sandkit builds its guest from Debian; this kit's image is not used"
_REGISTRY = re.compile(r"^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/")


class ImageKind(enum.StrEnum):
    BASE = "base"
    BASE_DOCKER = "base-docker"
    UNUSED = "unused"


@dataclass(frozen=True)
class ImageChoice:
    kind: ImageKind
    image: str  # the guest image sandkit uses (or would need)
    why: str


def _template_tag(reference: str) -> str | None:
    """The tag of a docker/sandbox-templates (or dhi.io/sbx-templates) reference
    (registry prefix and digest dropped), None for any other image."""
    name = _REGISTRY.sub("", reference.strip()).split("@", 1)[0]
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # no tag: ':' belonged to a registry port
        repo, tag = name, "latest"
    return tag if repo in (TEMPLATES, HARDENED_TEMPLATES) else None


def template_agent(reference: str) -> str | None:
    """The agent a template ships ('claude-code', 'shell', …; ``-docker`` dropped), None
    when ``reference`` is no sbx template."""
    tag = _template_tag(reference)
    if tag is None:
        return None
    agent = tag.removesuffix("-docker")
    return agent if agent in TEMPLATE_TAGS else None


def classify(reference: str | None) -> ImageChoice:
    if reference is None:
        return ImageChoice(ImageKind.BASE, BASE, "the kit names no image")
    tag = _template_tag(reference)
    if tag is not None and tag.endswith("-docker") and tag.removesuffix("-docker") in TEMPLATE_TAGS:
        return ImageChoice(
            ImageKind.BASE_DOCKER,
            BASE_DOCKER,
            f"'{reference}' is an sbx template with a Docker engine: sandkit's base image "
            "with Docker Engine, the agent installed by the kit",
        )
    if tag in TEMPLATE_TAGS:
        return ImageChoice(
            ImageKind.BASE,
            BASE,
            f"'{reference}' is an sbx template: sandkit's base image, the agent installed "
            "by the kit",
        )
    return ImageChoice(ImageKind.UNUSED, BASE, f"{UNUSED_MESSAGE} ('{reference}')")


def check_image(ctx: Context, path: Path, reference: str | None) -> None:
    """At load (`kit validate` and every start): an unused image is a warning on its line
    (the kit still loads and composes, so `kit inspect` shows what it would get)."""
    if reference is None:
        return
    choice = classify(reference)
    if choice.kind is ImageKind.UNUSED:
        ctx.warn(path, f"{choice.why}; install what the agent needs with install commands")


def require(reference: str | None, agent: str) -> None:
    """Before a sandbox is made (sandbox/request.py): every image kind now maps to an
    image sandkit builds, so nothing is refused. Kept until request.py drops the call."""
    del reference, agent


def needs_docker(sandbox: ResolvedSandbox) -> bool:
    """Whether the sandbox runs on the image variant with Docker Engine: its agent kit's
    image is a ``-docker`` template, or one of its mixins is the ``docker`` kit."""
    if classify(sandbox.agent.image).kind is ImageKind.BASE_DOCKER:
        return True
    return any(k.name == DOCKER_KIT and k.kind == "mixin" for k in sandbox.kits)


def image_variant(sandbox: ResolvedSandbox) -> str:
    """The guest image variant (vm/image.py VARIANTS) the sandbox boots."""
    return VARIANT_DOCKER if needs_docker(sandbox) else VARIANT_BASE
