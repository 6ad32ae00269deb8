from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.vm.qemu import MachineSpec, argv, kernel_cmdline, share_hotplug


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
