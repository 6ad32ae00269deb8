"""The QEMU command line for a sandbox (pure): a microvm with a virtio disk (qcow2 overlay),
the agent's virtio-serial port, virtiofs for the workspace, a restricted user-mode network
whose only way out is one forward to the proxy, an entropy device and QMP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

AGENT_PORT = "org.sandkit.agent"
SHARE_TAG = "share"
PROXY_ADDRESS = "10.0.2.100"
PROXY_PORT = 3128
# TCG cannot calibrate timers quickly; fixed values skip the calibration loops.
TCG_KERNEL_ARGS = ("tsc_early_khz=2400000", "no_timer_check", "lpj=4800000")
KERNEL_ARGS = ("console=ttyS0", "quiet", "panic=-1", "reboot=t", "cryptomgr.notests=1")


@dataclass(frozen=True)
class MachineSpec:
    kernel: Path
    initrd: Path
    disk: Path  # the sandbox's qcow2 overlay
    console_log: Path
    qmp_socket: Path
    agent_socket: Path
    cpus: int = 2
    memory_mib: int = 1024
    accel: str = "tcg"
    share_socket: Path | None = None  # virtiofsd's vhost-user socket
    proxy_command: str | None = None  # run per guest connection to PROXY_ADDRESS:PROXY_PORT
    kernel_params: Mapping[str, str] = field(default_factory=dict)  # sk.* for the guest
    qemu: str = "qemu-system-x86_64"


def kernel_cmdline(spec: MachineSpec) -> str:
    args = [*KERNEL_ARGS, *(TCG_KERNEL_ARGS if spec.accel == "tcg" else ())]
    for key, value in spec.kernel_params.items():
        if any(c.isspace() for c in value) or not value:
            raise ValueError(f"kernel parameter {key}={value!r} must be one word")
        args.append(f"sk.{key}={value}")
    return " ".join(args)


def argv(spec: MachineSpec) -> list[str]:
    machine = "microvm,x-option-roms=off,rtc=on"
    if spec.accel == "tcg":
        machine += ",pit=on,pic=on"
    cmd = [
        spec.qemu,
        "-M",
        machine,
        "-global",
        "virtio-mmio.force-legacy=false",
        "-accel",
        "tcg,tb-size=32" if spec.accel == "tcg" else spec.accel,
        "-cpu",
        "max" if spec.accel == "tcg" else "host",
        "-m",
        f"{spec.memory_mib}m",
        "-smp",
        str(spec.cpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(spec.kernel),
        "-initrd",
        str(spec.initrd),
        "-append",
        kernel_cmdline(spec),
        "-serial",
        f"file:{spec.console_log}",
        "-drive",
        f"id=root,file={spec.disk},format=qcow2,if=none,cache=unsafe,discard=unmap",
        "-device",
        "virtio-blk-device,drive=root",
        "-device",
        "virtio-serial-device",
        "-chardev",
        f"socket,id=agent,path={spec.agent_socket},server=on,wait=off",
        "-device",
        f"virtserialport,chardev=agent,name={AGENT_PORT}",
        "-object",
        "rng-random,filename=/dev/urandom,id=rng0",
        "-device",
        "virtio-rng-device,rng=rng0",
        # Pages the guest frees go back to the host within seconds (a finished build's
        # memory does not stay with QEMU); deflate-on-oom keeps the guest safe.
        "-device",
        "virtio-balloon-device,free-page-reporting=on,deflate-on-oom=on",
        "-qmp",
        f"unix:{spec.qmp_socket},server=on,wait=off",
    ]
    if spec.share_socket is not None:
        cmd += [
            "-chardev",
            f"socket,id=share,path={spec.share_socket}",
            "-device",
            f"vhost-user-fs-device,chardev=share,tag={SHARE_TAG}",
            "-object",
            f"memory-backend-memfd,id=mem,size={spec.memory_mib}m,share=on",
            "-numa",
            "node,memdev=mem",
        ]
    netdev = "user,id=net0,restrict=on"
    if spec.proxy_command is not None:
        if "," in spec.proxy_command:
            raise ValueError("the proxy command cannot contain ','")
        netdev += f",guestfwd=tcp:{PROXY_ADDRESS}:{PROXY_PORT}-cmd:{spec.proxy_command}"
    cmd += ["-netdev", netdev, "-device", "virtio-net-device,netdev=net0"]
    return cmd
