"""host-mount@1 shares on the QEMU command line and over QMP (pure): microvm takes them
on its command line, q35 by hotplug into root ports that every q35 machine has, so the
golden snapshot (keyed on the argv) is the same whatever a sandbox mounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.vm import golden, qemu
from sandkit.vm.image import Image
from sandkit.vm.machine import Machine, MachinePaths, VMError
from tests.unit.vm.test_qemu_argv import spec, value


def test_microvm_takes_each_host_share_on_its_command_line_with_its_own_tag() -> None:
    cmd = qemu.argv(
        spec(
            share_socket=Path("/s/share.sock"),
            host_shares=(Path("/s/hm0.sock"), Path("/s/hm1.sock")),
        )
    )
    assert value(cmd, "-chardev")[1:] == [
        "socket,id=share,path=/s/share.sock",
        "socket,id=hm0,path=/s/hm0.sock",
        "socket,id=hm1,path=/s/hm1.sock",
    ]
    fs = [d for d in value(cmd, "-device") if d.startswith("vhost-user-fs")]
    assert fs == [
        "vhost-user-fs-device,chardev=share,tag=share",
        "vhost-user-fs-device,chardev=hm0,tag=hm0",
        "vhost-user-fs-device,chardev=hm1,tag=hm1",
    ]
    assert value(cmd, "-object")[-1] == "memory-backend-memfd,id=mem,size=1024m,share=on"


def test_host_shares_without_a_workspace_still_get_shared_memory() -> None:
    cmd = qemu.argv(spec(host_shares=(Path("/s/hm0.sock"),)))
    assert value(cmd, "-chardev")[1:] == ["socket,id=hm0,path=/s/hm0.sock"]  # no workspace's
    assert "vhost-user-fs-device,chardev=hm0,tag=hm0" in value(cmd, "-device")
    assert value(cmd, "-numa") == ["node,memdev=mem"]
    assert "memory-backend-memfd,id=mem,size=1024m,share=on" in value(cmd, "-object")


def test_as_many_host_shares_as_there_are_root_ports_fit() -> None:
    shares = tuple(Path(f"/s/hm{n}.sock") for n in range(qemu.MAX_HOST_SHARES))
    fs = [d for d in value(qemu.argv(spec(host_shares=shares)), "-device") if "tag=hm" in d]
    assert len(fs) == qemu.MAX_HOST_SHARES == 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"machine": "q35", "ram_file": Path("/r"), "host_shares": (Path("/h"),)}, "hotplug"),
        ({"host_shares": tuple(Path(f"/h{n}") for n in range(5))}, "at most 4"),
    ],
)
def test_host_share_misuse_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        qemu.argv(spec(**changes))


def test_every_q35_machine_has_a_root_port_per_possible_share() -> None:
    devices = value(qemu.argv(spec(machine="q35", ram_file=Path("/r"))), "-device")
    ports = [d for d in devices if d.startswith("pcie-root-port")]
    assert ports == [
        f"pcie-root-port,id=rp{n},bus=pcie.0,chassis={n}"
        for n in range(1, 2 + qemu.MAX_HOST_SHARES)
    ]


def test_the_golden_key_covers_the_root_ports(tmp_path: Path) -> None:
    """A golden saved before the host-share ports has another argv, so another key: it is
    never restored into a machine with a different device set."""
    inputs = golden.key_inputs(Image(key="i", path=tmp_path, kernel_release="6.1"), 2, 512, "tcg")
    argv = inputs["argv"]
    assert isinstance(argv, list)
    for port in ("rp1", *qemu.HOST_SHARE_PORTS):
        assert any(f"pcie-root-port,id={port}," in a for a in argv)


def test_each_host_share_is_hotplugged_into_its_own_port_apart_from_the_workspace() -> None:
    commands = [qemu.host_share_hotplug(n, Path(f"/s/hm{n}.sock")) for n in range(4)]
    workspace = qemu.share_hotplug(Path("/s/share.sock"))
    devices = [c[1][1] for c in [*commands, workspace]]
    chardevs = [c[0][1]["id"] for c in [*commands, workspace]]
    assert [d["bus"] for d in devices] == ["rp2", "rp3", "rp4", "rp5", "rp1"]
    assert [d["tag"] for d in devices] == ["hm0", "hm1", "hm2", "hm3", "share"]
    assert len({d["id"] for d in devices}) == len(set(chardevs)) == 5
    assert commands[1][0][1]["backend"] == {
        "type": "socket",
        "data": {"addr": {"type": "unix", "data": {"path": "/s/hm1.sock"}}, "server": False},
    }
    with pytest.raises(ValueError, match="at most 4"):
        qemu.host_share_hotplug(4, Path("/s/hm4.sock"))


def test_a_machine_refuses_more_host_shares_than_it_has_ports(tmp_path: Path) -> None:
    image = Image(key="i", path=tmp_path, kernel_release="6.1")
    paths = MachinePaths(tmp_path, tmp_path / "s")
    kwargs: dict[str, object] = {
        "cpus": 1,
        "memory_mib": 256,
        "share": None,
        "params": {},
        "proxy_socket": None,
    }
    with pytest.raises(VMError, match="at most 4"):
        Machine(image, paths, host_shares=[tmp_path] * 5, **kwargs)  # type: ignore[arg-type]
    machine = Machine(image, paths, host_shares=[tmp_path / "a", tmp_path / "b"], **kwargs)  # type: ignore[arg-type]
    assert machine.spec().host_shares == (tmp_path / "s" / "hm0.sock", tmp_path / "s" / "hm1.sock")
