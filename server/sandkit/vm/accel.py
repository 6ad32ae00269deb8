"""Which accelerator a VM runs under: KVM only where a probe saw a guest boot under it."""

from __future__ import annotations

import json
import os
import subprocess

from sandkit.errors import SetupError
from sandkit.paths import cache_dir
from sandkit.vm import hostcheck
from sandkit.vm.image import Image


def choose_accel(image: Image) -> str:
    """KVM only when a probe showed a guest booting under it on this machine (cached);
    SANDKIT_ACCEL=tcg|kvm overrides."""
    forced = os.environ.get("SANDKIT_ACCEL")
    if forced == "kvm" and (problem := hostcheck.kvm_problem()) is not None:
        raise SetupError(f"SANDKIT_ACCEL=kvm: {problem}")
    if forced in ("tcg", "kvm"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    probe = cache_dir() / "accel-probe.json"
    key = f"{os.uname().release}/{image.key}"
    try:
        known = json.loads(probe.read_text())
        if known.get("key") == key:
            return str(known["accel"])
    except (OSError, ValueError, KeyError):
        pass
    accel = "kvm" if _kvm_boots(image) else "tcg"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(json.dumps({"key": key, "accel": accel}))
    return accel


def _kvm_boots(image: Image, timeout: float = 8.0) -> bool:
    """Boot the kernel under KVM with no disk; a working KVM reaches the initramfs's
    'no root disk' failure (which powers off) well within the timeout."""
    argv = [
        "qemu-system-x86_64",
        "-M",
        "microvm",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        "console=ttyS0 panic=-1 reboot=t quiet",
        "-serial",
        "stdio",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return b"sandkit-init" in done.stdout
