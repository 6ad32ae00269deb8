from __future__ import annotations

from pathlib import Path

from sandkit import hostconfig


def test_apt_sources_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example.net/debian bookworm main\n"
        "deb-src http://src.example.net/debian bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: https://a.example.org/debian/\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://sec.example.org/debian-security\nSuites: bookworm-security\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://off.example.org/debian\n"
    )
    (tmp_path / "sources.list.d" / "x.list.disabled").write_text(
        "deb http://no.example.org/ x main\n"
    )
    assert hostconfig.apt_mirrors(tmp_path) == [
        "http://mirror.example.net/debian",
        "https://a.example.org/debian",
        "http://sec.example.org/debian-security",
    ]
    assert hostconfig.debian_mirror(tmp_path) == "http://mirror.example.net/debian"


def test_no_sources(tmp_path: Path) -> None:
    assert hostconfig.apt_mirrors(tmp_path) == []
    assert hostconfig.debian_mirror(tmp_path) is None


def test_host_of() -> None:
    assert hostconfig.host_of("https://reg.example.com:8443/npm/") == "reg.example.com"
    assert hostconfig.host_of(None) is None


def test_registry_args_are_hosts_or_urls() -> None:
    values = hostconfig.registry_args()
    for name, value in values.items():
        if name.endswith("Host"):
            assert "/" not in value and ":" not in value
        else:
            assert value.startswith(("https://", "http://")), (name, value)
            assert hostconfig.host_of(value) in hostconfig.registry_hosts(values)
