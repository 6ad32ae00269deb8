from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.vm.qemu import MachineSpec, argv, kernel_cmdline, proxy_command, share_hotplug


def spec(**changes: object) -> MachineSpec:
    base = {
        "kernel": Path("/img/vmlinux"),
        "initrd": Path("/img/initrd.cpio"),
        "disk": Path("/s/disk.qcow2"),
        "console_log": Path("/s/console.log"),
        "qmp_socket": Path("/s/qmp.sock"),
        "agent_socket": Path("/s/agent.sock"),
        "cpus": 2,
        "memory_mib": 1024,
        "kernel_params": {"ws": "/home/u/proj", "hostname": "box"},
    }
    base.update(changes)
    return MachineSpec(**base)  # type: ignore[arg-type]


def value(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_tcg_microvm() -> None:
    cmd = argv(spec())
    assert value(cmd, "-M") == ["microvm,x-option-roms=off,rtc=on,pit=on,pic=on"]
    assert value(cmd, "-global") == ["virtio-mmio.force-legacy=false"]
    assert value(cmd, "-accel") == ["tcg,tb-size=32"]
    append = value(cmd, "-append")[0]
    for arg in (
        "tsc_early_khz=2400000",
        "no_timer_check",
        "lpj=4800000",
        "norandmaps",  # TCG's translations are found by virtual address
        "sk.ws=/home/u/proj",
        "sk.hostname=box",
        "console=ttyS0",
    ):
        assert arg in append.split()
    assert "-nodefaults" in cmd and "-no-user-config" in cmd
    assert "virtserialport,chardev=agent,name=org.sandkit.agent" in value(cmd, "-device")
    assert value(cmd, "-qmp") == ["unix:/s/qmp.sock,server=on,wait=off"]


def test_network_is_restricted_with_one_forward() -> None:
    cmd = argv(spec(proxy_command="/bin/busybox nc 127.0.0.1 4000"))
    (netdev,) = value(cmd, "-netdev")
    assert netdev == (
        "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:/bin/busybox nc 127.0.0.1 4000"
    )
    assert value(argv(spec()), "-netdev") == ["user,id=net0,restrict=on"]
    with pytest.raises(ValueError, match="cannot contain ','"):
        argv(spec(proxy_command="a,b"))


def test_share_needs_shared_memory() -> None:
    cmd = argv(spec(share_socket=Path("/s/share.sock")))
    assert "vhost-user-fs-device,chardev=share,tag=share" in value(cmd, "-device")
    assert "memory-backend-memfd,id=mem,size=1024m,share=on" in value(cmd, "-object")
    assert value(cmd, "-numa") == ["node,memdev=mem"]


def test_kvm() -> None:
    cmd = argv(spec(accel="kvm"))
    assert value(cmd, "-accel") == ["kvm"] and value(cmd, "-cpu") == ["host"]
    assert "lpj=4800000" not in kernel_cmdline(spec(accel="kvm"))
    assert "norandmaps" not in kernel_cmdline(spec(accel="kvm"))  # ASLR costs KVM nothing


def test_kernel_params_must_be_words() -> None:
    with pytest.raises(ValueError, match="must be one word"):
        kernel_cmdline(spec(kernel_params={"ws": "/path with space"}))


def test_q35_keeps_ram_in_a_shared_file_and_has_a_port_for_the_share() -> None:
    cmd = argv(spec(machine="q35", ram_file=Path("/dev/shm/x.ram")))
    assert value(cmd, "-M") == ["q35"]
    assert value(cmd, "-global") == ["ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]
    devices = value(cmd, "-device")
    assert "virtio-blk-pci,drive=root" in devices and "virtio-net-pci,netdev=net0" in devices
    assert not any(d.endswith("-device") or "-device," in d for d in devices)  # no mmio
    assert "pcie-root-port,id=rp1,bus=pcie.0,chassis=1" in devices
    assert value(cmd, "-object")[-1] == (
        "memory-backend-file,id=mem,size=1024m,mem-path=/dev/shm/x.ram,share=on"
    )
    assert value(cmd, "-numa") == ["node,memdev=mem"]
    assert "-incoming" not in cmd
    assert value(argv(spec(machine="q35", ram_file=Path("/r"), incoming=True)), "-incoming") == [
        "defer"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"machine": "q35"}, "ram_file"),
        ({"machine": "q35", "ram_file": Path("/r"), "share_socket": Path("/s")}, "hotplug"),
        ({"incoming": True}, "golden"),
        ({"machine": "pc"}, "unknown machine"),
    ],
)
def test_q35_misuse_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        argv(spec(**changes))


def test_share_hotplug_targets_the_root_port() -> None:
    (chardev, args1), (device, args2) = share_hotplug(Path("/s/share.sock"))
    assert chardev == "chardev-add" and device == "device_add"
    assert args1["backend"] == {
        "type": "socket",
        "data": {"addr": {"type": "unix", "data": {"path": "/s/share.sock"}}, "server": False},
    }
    assert args2 == {
        "driver": "vhost-user-fs-pci",
        "id": "share0",
        "chardev": "share",
        "tag": "share",
        "bus": "rp1",
    }


def options(cmd: list[str]) -> list[tuple[str, str | None]]:
    """The command line as (option, value) pairs, in order."""
    bare = {"-nodefaults", "-no-user-config", "-no-reboot"}
    out: list[tuple[str, str | None]] = []
    rest = iter(cmd[1:])
    for flag in rest:
        assert flag.startswith("-"), flag
        out.append((flag, None if flag in bare else next(rest)))
    return out


COMMON = [
    ("-cpu", "max"),
    ("-m", "1024m"),
    ("-smp", "2"),
    ("-nodefaults", None),
    ("-no-user-config", None),
    ("-display", "none"),
    ("-no-reboot", None),
    ("-kernel", "/img/vmlinux"),
    ("-initrd", "/img/initrd.cpio"),
    (
        "-append",
        "console=ttyS0 quiet panic=-1 reboot=t cryptomgr.notests=1 tsc_early_khz=2400000 "
        "no_timer_check lpj=4800000 norandmaps sk.ws=/home/u/proj sk.hostname=box",
    ),
    ("-serial", "file:/s/console.log"),
    ("-drive", "id=root,file=/s/disk.qcow2,format=qcow2,if=none,cache=unsafe,discard=unmap"),
]


def devices(bus: str) -> list[tuple[str, str | None]]:
    return [
        ("-device", f"virtio-blk-{bus},drive=root"),
        ("-device", f"virtio-serial-{bus}"),
        ("-chardev", "socket,id=agent,path=/s/agent.sock,server=on,wait=off"),
        ("-device", "virtserialport,chardev=agent,name=org.sandkit.agent"),
        ("-object", "rng-random,filename=/dev/urandom,id=rng0"),
        ("-device", f"virtio-rng-{bus},rng=rng0"),
        ("-device", f"virtio-balloon-{bus},free-page-reporting=on,deflate-on-oom=on"),
        ("-qmp", "unix:/s/qmp.sock,server=on,wait=off"),
    ]


FORWARD = (
    "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:"
    "socat -lf /dev/null -t 86400 -b 65536 - UNIX-CONNECT:run/proxy.sock"
)


def test_the_whole_microvm_command_line() -> None:
    cmd = argv(
        spec(share_socket=Path("/s/share.sock"), proxy_command=proxy_command("run/proxy.sock"))
    )
    assert cmd[0] == "qemu-system-x86_64"
    assert options(cmd) == [
        ("-M", "microvm,x-option-roms=off,rtc=on,pit=on,pic=on"),
        ("-global", "virtio-mmio.force-legacy=false"),
        ("-accel", "tcg,tb-size=32"),
        *COMMON,
        *devices("device"),
        ("-chardev", "socket,id=share,path=/s/share.sock"),
        ("-device", "vhost-user-fs-device,chardev=share,tag=share"),
        ("-object", "memory-backend-memfd,id=mem,size=1024m,share=on"),
        ("-numa", "node,memdev=mem"),
        ("-netdev", FORWARD),
        ("-device", "virtio-net-device,netdev=net0"),
    ]


def test_the_whole_q35_command_line() -> None:
    cmd = argv(
        spec(
            machine="q35",
            ram_file=Path("/dev/shm/x.ram"),
            proxy_command=proxy_command("run/proxy.sock"),
            incoming=True,
        )
    )
    assert options(cmd) == [
        ("-M", "q35"),
        ("-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"),
        ("-accel", "tcg,tb-size=64"),
        *COMMON,
        *devices("pci"),
        ("-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1"),
        # one root port per possible host-mount share, used or not (one golden for all)
        ("-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2"),
        ("-device", "pcie-root-port,id=rp3,bus=pcie.0,chassis=3"),
        ("-device", "pcie-root-port,id=rp4,bus=pcie.0,chassis=4"),
        ("-device", "pcie-root-port,id=rp5,bus=pcie.0,chassis=5"),
        ("-object", "memory-backend-file,id=mem,size=1024m,mem-path=/dev/shm/x.ram,share=on"),
        ("-numa", "node,memdev=mem"),
        ("-netdev", FORWARD),
        ("-device", "virtio-net-pci,netdev=net0"),
        ("-incoming", "defer"),
    ]


MACHINES = [
    {"machine": "microvm"},
    {"machine": "microvm", "accel": "kvm"},
    {"machine": "microvm", "share_socket": Path("/s/share.sock")},
    {"machine": "q35", "ram_file": Path("/r")},
    {"machine": "q35", "ram_file": Path("/r"), "accel": "kvm"},
    {"machine": "q35", "ram_file": Path("/r"), "incoming": True},
]


@pytest.mark.parametrize("changes", MACHINES)
def test_every_machine_has_one_restricted_network_whose_only_way_out_is_the_proxy(
    changes: dict[str, object],
) -> None:
    bus = "pci" if changes["machine"] == "q35" else "device"
    for command, netdev in (
        (None, "user,id=net0,restrict=on"),
        (proxy_command("run/proxy.sock"), FORWARD),
    ):
        cmd = argv(spec(**changes, proxy_command=command))
        assert value(cmd, "-netdev") == [netdev]
        assert value(cmd, "-nic") == [] and value(cmd, "-net") == []
        nics = [d for d in value(cmd, "-device") if d.startswith("virtio-net")]
        assert nics == [f"virtio-net-{bus},netdev=net0"]
        assert "-nodefaults" in cmd  # no default NIC beside it


def test_kvm_uses_the_host_cpu_and_no_tcg_settings() -> None:
    micro = argv(spec(accel="kvm"))
    assert value(micro, "-M") == ["microvm,x-option-roms=off,rtc=on"]
    assert (value(micro, "-accel"), value(micro, "-cpu")) == (["kvm"], ["host"])
    q35 = argv(spec(machine="q35", ram_file=Path("/r"), accel="kvm"))
    assert (value(q35, "-accel"), value(q35, "-cpu")) == (["kvm"], ["host"])
    assert value(q35, "-append") == [
        "console=ttyS0 quiet panic=-1 reboot=t cryptomgr.notests=1 sk.ws=/home/u/proj "
        "sk.hostname=box"
    ]


def test_memory_and_cpus_reach_every_place_that_sizes_them() -> None:
    cmd = argv(spec(memory_mib=3072, cpus=6, share_socket=Path("/s/share.sock")))
    assert value(cmd, "-m") == ["3072m"] and value(cmd, "-smp") == ["6"]
    assert "memory-backend-memfd,id=mem,size=3072m,share=on" in value(cmd, "-object")
    q35 = argv(spec(machine="q35", ram_file=Path("/r"), memory_mib=512))
    assert "memory-backend-file,id=mem,size=512m,mem-path=/r,share=on" in value(q35, "-object")


@pytest.mark.parametrize("value_", ["", "two words", "tab\there", "new\nline"])
def test_kernel_params_must_be_one_word(value_: str) -> None:
    with pytest.raises(ValueError) as caught:
        kernel_cmdline(spec(kernel_params={"ws": value_}))
    assert str(caught.value) == f"kernel parameter ws={value_!r} must be one word"


def test_proxy_command_joins_the_guest_connection_to_the_proxy_socket() -> None:
    assert proxy_command("/run/sk/proxy.sock") == (
        "socat -lf /dev/null -t 86400 -b 65536 - UNIX-CONNECT:/run/sk/proxy.sock"
    )
    assert proxy_command("p.sock", socat="/usr/bin/socat").startswith("/usr/bin/socat -lf ")
    assert proxy_command("/run/X-1/p.sock").endswith(" UNIX-CONNECT:/run/X-1/p.sock")


@pytest.mark.parametrize(
    ("socket", "socat"),
    [
        ("", "socat"),
        ("a,b.sock", "socat"),  # QEMU would split its -netdev option here
        ("a b.sock", "socat"),
        ("a'b", "socat"),
        ('a"b', "socat"),
        ("a\nb", "socat"),
        ("a\\b", "socat"),
        ("p.sock", "so cat"),
        ("p.sock", "socat,x"),
    ],
)
def test_proxy_command_refuses_what_qemu_would_split(socket: str, socat: str) -> None:
    with pytest.raises(ValueError) as caught:
        proxy_command(socket, socat)
    assert str(caught.value) == f"the proxy socket path {socket!r} cannot be passed to QEMU"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"machine": "q35"}, "a q35 sandbox keeps its RAM in a file: give ram_file"),
        (
            {"machine": "q35", "ram_file": Path("/r"), "share_socket": Path("/s")},
            "a q35 sandbox gets its share by hotplug, not on the command line",
        ),
        ({"incoming": True}, "only a q35 sandbox is restored from a golden snapshot"),
        ({"machine": "pc"}, "unknown machine type 'pc'"),
        ({"proxy_command": "a,b"}, "the proxy command cannot contain ','"),
    ],
)
def test_misuse_is_refused_in_words(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        argv(spec(**changes))
    assert str(caught.value) == message


def test_share_hotplug_adds_the_chardev_then_the_device() -> None:
    assert share_hotplug(Path("/s/share.sock"))[0] == (
        "chardev-add",
        {
            "id": "share",
            "backend": {
                "type": "socket",
                "data": {
                    "addr": {"type": "unix", "data": {"path": "/s/share.sock"}},
                    "server": False,
                },
            },
        },
    )
