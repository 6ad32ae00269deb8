"""The QEMU command line for a sandbox (pure): a virtio disk (qcow2 overlay), the agent's
virtio-serial port, virtiofs for the workspace, a restricted user-mode network whose only
way out is one forward to the proxy, an entropy device, a free-page-reporting balloon and
QMP.

Two machines: ``microvm`` (virtio-mmio; the fastest cold boot) for sandboxes booted cold,
and ``q35`` (virtio-pci) for warm-pool members restored from a golden snapshot: only PCI
can hotplug the virtiofs device after the restore (a vhost-user device blocks migration,
so the golden is saved without it), and its RAM lives in a file so that each clone copies
the file instead of streaming the RAM (``x-ignore-shared``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

AGENT_PORT = "org.sandkit.agent"
SHARE_TAG = "share"
SHARE_PORT = "rp1"  # the q35 PCIe root port that takes the hotplugged virtiofs device
SHARE_CHARDEV = "share"
# host-mount@1 shares (one virtiofsd each, tag hmN): q35 takes them by hotplug, each into
# a root port of its own. The ports are on every q35 command line whether used or not, so
# one golden serves every sandbox; adding them changed the argv, which is part of the
# golden's key (vm/golden.py key_inputs), so goldens saved without them are not restored
# into this machine. microvm takes them on the command line (24 virtio-mmio transports).
HOST_SHARE_PORTS = ("rp2", "rp3", "rp4", "rp5")
MAX_HOST_SHARES = len(HOST_SHARE_PORTS)
PROXY_ADDRESS = "10.0.2.100"
PROXY_PORT = 3128
# The guest's disk, as sbx's default: 20 GiB, sparse. The overlay starts at the image's
# size and is grown while the VM runs (QMP block_resize, then resize2fs in the guest:
# vm/machine.py grow_disk), once: goldens before they are saved, a booted sandbox at its
# first start, a bigger --disk at its first start.
DEFAULT_DISK_MIB = 20 << 10
# TCG's translation cache per machine, in MiB (bench/vm.py prints the trade-off).
TB_SIZE_MIB = {"q35": 64, "microvm": 32}
# TCG cannot calibrate timers quickly; fixed values skip the calibration loops.
# norandmaps: TCG (QEMU 7.2) finds a translation by the guest's virtual address, so under
# ASLR every new process's code is translated again (~8 MiB of TCG's cache and ~0.1 s for
# `true` plus `bash -lc true`, measured); at fixed addresses the translations the pool
# member primed serve every later process. Inside the VM, which is the sandbox's boundary,
# ASLR guarded only the guest's own programs from each other; KVM keeps it.
TCG_KERNEL_ARGS = ("tsc_early_khz=2400000", "no_timer_check", "lpj=4800000", "norandmaps")
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
    host_shares: tuple[Path, ...] = ()  # microvm: host-mount@1 virtiofsd sockets, tag hmN
    # Run per guest connection to PROXY_ADDRESS:PROXY_PORT (see proxy_command()).
    proxy_command: str | None = None
    kernel_params: Mapping[str, str] = field(default_factory=dict)  # sk.* for the guest
    qemu: str = "qemu-system-x86_64"
    machine: str = "microvm"  # or "q35" (see the module's doc)
    ram_file: Path | None = None  # q35: guest RAM in this (tmpfs) file, shared
    incoming: bool = False  # q35: wait for `migrate-incoming` (a clone of a golden)
    tb_size_mib: int | None = None  # TCG's translation cache; None: TB_SIZE_MIB's


def shape(cpus: int, memory_mib: int) -> str:
    """A machine's shape as warm-pool members and goldens are named by it: "2c1024m"."""
    return f"{cpus}c{memory_mib}m"


def proxy_command(socket: str, socat: str = "socat") -> str:
    """What QEMU runs for each guest connection to the proxy address: socat joins the
    connection to the proxy's Unix socket ``socket`` (a path, absolute or relative to
    QEMU's working folder). Its stdio is the guest's connection, so its messages go to
    /dev/null, not to the guest; after one side ends it keeps copying the other (a half-
    closed tunnel) instead of stopping after socat's default 0.5 s."""
    if any(c in socket + socat for c in ",'\" \n\\") or not socket:
        # QEMU splits -netdev options at commas; the command is parsed like a shell's.
        raise ValueError(f"the proxy socket path {socket!r} cannot be passed to QEMU")
    return f"{socat} -lf /dev/null -t 86400 -b 65536 - UNIX-CONNECT:{socket}"


def kernel_cmdline(spec: MachineSpec) -> str:
    args = [*KERNEL_ARGS, *(TCG_KERNEL_ARGS if spec.accel == "tcg" else ())]
    for key, value in spec.kernel_params.items():
        if any(c.isspace() for c in value) or not value:
            raise ValueError(f"kernel parameter {key}={value!r} must be one word")
        args.append(f"sk.{key}={value}")
    return " ".join(args)


def argv(spec: MachineSpec) -> list[str]:
    if spec.machine not in ("microvm", "q35"):
        raise ValueError(f"unknown machine type {spec.machine!r}")
    pci = spec.machine == "q35"
    bus = "pci" if pci else "device"  # virtio-blk-pci or virtio-blk-device, and so on
    # Built in this order, which is also the order its checks raise in.
    return [
        spec.qemu,
        *_machine(spec, pci),
        *_boot(spec),
        *_devices(spec, bus),
        *_memory(spec, pci),
        *_network(spec, bus),
        *_incoming(spec, pci),
    ]


def _machine(spec: MachineSpec, pci: bool) -> list[str]:
    """The machine type, accelerator, CPU, RAM size and CPU count; no default devices."""
    if pci:
        # Native PCIe hotplug: the ACPI path waits seconds before the guest sees a device.
        machine = ["-M", "q35", "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]
    else:
        options = "microvm,x-option-roms=off,rtc=on" + (
            ",pit=on,pic=on" if spec.accel == "tcg" else ""
        )
        machine = ["-M", options, "-global", "virtio-mmio.force-legacy=false"]
    # A smaller translation cache saves RSS; restored clones keep more, since their first
    # commands after adoption re-translate everything (TCG's cache is not migrated). Not
    # part of a snapshot: a clone may run with another size than its golden was saved with.
    tb_size = spec.tb_size_mib or TB_SIZE_MIB["q35" if pci else "microvm"]
    tcg = f"tcg,tb-size={tb_size}"
    return [
        *machine,
        "-accel",
        tcg if spec.accel == "tcg" else spec.accel,
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
    ]


def _boot(spec: MachineSpec) -> list[str]:
    """The kernel, its initrd and command line, and the serial console's log."""
    return [
        "-kernel",
        str(spec.kernel),
        "-initrd",
        str(spec.initrd),
        "-append",
        kernel_cmdline(spec),
        "-serial",
        f"file:{spec.console_log}",
    ]


def _devices(spec: MachineSpec, bus: str) -> list[str]:
    """The disk, the agent's port, entropy, the balloon and QMP."""
    return [
        "-drive",
        f"id=root,file={spec.disk},format=qcow2,if=none,cache=unsafe,discard=unmap",
        "-device",
        f"virtio-blk-{bus},drive=root",
        "-device",
        f"virtio-serial-{bus}",
        "-chardev",
        f"socket,id=agent,path={spec.agent_socket},server=on,wait=off",
        "-device",
        f"virtserialport,chardev=agent,name={AGENT_PORT}",
        "-object",
        "rng-random,filename=/dev/urandom,id=rng0",
        "-device",
        f"virtio-rng-{bus},rng=rng0",
        # Pages the guest frees go back to the host within seconds (a finished build's
        # memory does not stay with QEMU); deflate-on-oom keeps the guest safe.
        "-device",
        f"virtio-balloon-{bus},free-page-reporting=on,deflate-on-oom=on",
        "-qmp",
        f"unix:{spec.qmp_socket},server=on,wait=off",
    ]


def _memory(spec: MachineSpec, pci: bool) -> list[str]:
    """Shared guest RAM (vhost-user needs it): q35's in a file, with the root ports its
    shares are hotplugged into; microvm's in a memfd, with the shares on the command line."""
    if len(spec.host_shares) > MAX_HOST_SHARES:
        raise ValueError(f"at most {MAX_HOST_SHARES} host-mount shares fit a sandbox")
    if pci:
        if spec.ram_file is None:
            raise ValueError("a q35 sandbox keeps its RAM in a file: give ram_file")
        if spec.share_socket is not None or spec.host_shares:
            raise ValueError("a q35 sandbox gets its share by hotplug, not on the command line")
        ports = [
            arg
            for n, port in enumerate((SHARE_PORT, *HOST_SHARE_PORTS), start=1)
            for arg in ("-device", f"pcie-root-port,id={port},bus=pcie.0,chassis={n}")
        ]
        return [
            *ports,
            "-object",
            f"memory-backend-file,id=mem,size={spec.memory_mib}m,mem-path={spec.ram_file},share=on",
            "-numa",
            "node,memdev=mem",
        ]
    shares = [(SHARE_CHARDEV, SHARE_TAG, spec.share_socket)] if spec.share_socket else []
    shares += [(host_share_tag(n), host_share_tag(n), s) for n, s in enumerate(spec.host_shares)]
    if not shares:
        return []
    return [
        *(
            arg
            for chardev, tag, socket in shares
            for arg in (
                "-chardev",
                f"socket,id={chardev},path={socket}",
                "-device",
                f"vhost-user-fs-device,chardev={chardev},tag={tag}",
            )
        ),
        "-object",
        f"memory-backend-memfd,id=mem,size={spec.memory_mib}m,share=on",
        "-numa",
        "node,memdev=mem",
    ]


def _network(spec: MachineSpec, bus: str) -> list[str]:
    """User-mode networking that opens nothing outward; one forward to the proxy."""
    netdev = "user,id=net0,restrict=on"
    if spec.proxy_command is not None:
        if "," in spec.proxy_command:
            raise ValueError("the proxy command cannot contain ','")
        netdev += f",guestfwd=tcp:{PROXY_ADDRESS}:{PROXY_PORT}-cmd:{spec.proxy_command}"
    return ["-netdev", netdev, "-device", f"virtio-net-{bus},netdev=net0"]


def _incoming(spec: MachineSpec, pci: bool) -> list[str]:
    if not spec.incoming:
        return []
    if not pci:
        raise ValueError("only a q35 sandbox is restored from a golden snapshot")
    return ["-incoming", "defer"]


def host_share_tag(n: int) -> str:
    """The virtiofs tag (and chardev id) of the ``n``th host-mount share."""
    return f"hm{n}"


def share_hotplug(
    socket: Path,
    chardev: str = SHARE_CHARDEV,
    tag: str = SHARE_TAG,
    port: str = SHARE_PORT,
    device: str = "share0",
) -> list[tuple[str, dict[str, object]]]:
    """The QMP commands that attach virtiofsd's socket to a running q35 guest."""
    return [
        (
            "chardev-add",
            {
                "id": chardev,
                "backend": {
                    "type": "socket",
                    "data": {
                        "addr": {"type": "unix", "data": {"path": str(socket)}},
                        "server": False,
                    },
                },
            },
        ),
        (
            "device_add",
            {
                "driver": "vhost-user-fs-pci",
                "id": device,
                "chardev": chardev,
                "tag": tag,
                "bus": port,
            },
        ),
    ]


def host_share_hotplug(n: int, socket: Path) -> list[tuple[str, dict[str, object]]]:
    """The QMP commands that attach the ``n``th host-mount share (its own root port)."""
    if not 0 <= n < MAX_HOST_SHARES:
        raise ValueError(f"at most {MAX_HOST_SHARES} host-mount shares fit a sandbox")
    tag = host_share_tag(n)
    return share_hotplug(socket, tag, tag, HOST_SHARE_PORTS[n], f"{tag}dev")
