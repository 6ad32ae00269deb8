"""Injection when one host carries more than one credential or header, and what the
response scrubber is told to look for; every injector is made inside its test."""

from __future__ import annotations

import base64

from sandkit.kits.model import Credential, Inject, Origin
from sandkit.net.inject import BoundCredential, Injector

ORIGIN = Origin(kit="k", file="f", line=1, column=1)


def bound(service: str, value: str | None, *injects: Inject) -> BoundCredential:
    return BoundCredential(
        Credential(service=service, inject=injects, origin=ORIGIN), value, f"ph-{service}"
    )


def test_only_the_first_placeholder_spot_in_a_format_is_filled() -> None:
    inj = Injector([bound("a", "sk", Inject(domain="a.test", header="X-K", format="T %s (%s)"))])
    assert inj.apply("a.test", "/", [], secure=True).headers == [("X-K", "T sk (%s)")]


def test_a_credential_without_a_value_does_not_stop_the_next_one() -> None:
    inj = Injector(
        [
            bound("unset", None, Inject(domain="a.test", header="X-One")),
            bound("set", "sk", Inject(domain="a.test", header="X-Two")),
        ]
    )
    out = inj.apply("a.test", "/", [], secure=True)
    assert out.headers == [("X-Two", "sk")] and out.injected == ["set"]
    assert out.warnings == ["no value for service 'unset': run `sandkit secret set unset`"]


def test_a_refused_header_does_not_stop_the_next_one() -> None:
    inj = Injector(
        [
            bound("bad", "sk", Inject(domain="a.test", header="Bad Header")),
            bound("good", "gk", Inject(domain="a.test", header="X-Good")),
        ]
    )
    out = inj.apply("a.test", "/", [], secure=True)
    assert out.headers == [("X-Good", "gk")] and out.injected == ["good"]
    assert len(out.warnings) == 1 and "'Bad Header'" in out.warnings[0]


def test_a_placeholder_in_a_header_its_credential_does_not_name_lists_those_it_does() -> None:
    inj = Injector(
        [
            bound(
                "two",
                None,  # not set: nothing injected, so both headers are judged as sent
                Inject(domain="a.test", header="X-B"),
                Inject(domain="a.test", header="X-A"),
            )
        ]
    )
    out = inj.apply("a.test", "/", [("Referer", "https://x/?k=ph-two")], secure=True)
    assert out.headers == [("Referer", "https://x/?k=ph-two")]
    assert out.warnings[-1] == (
        "placeholder for 'two' in header Referer to a.test: only X-A or X-B carries the "
        "credential; left as is"
    )
    assert len(out.warnings) == 3  # and, once per header, that it has no value


def test_the_scrubber_looks_for_each_value_and_each_basic_token() -> None:
    inj = Injector(
        [
            bound(
                "reg",
                "pw",
                Inject(
                    domain="r.test", header="Authorization", format="Basic %s", basic_username="bob"
                ),
                Inject(
                    domain="s.test", header="Authorization", format="Basic %s", basic_username="amy"
                ),
                Inject(domain="t.test", header="X-Plain"),
            ),
            bound("none", None, Inject(domain="n.test", header="X-N")),
        ]
    )
    needles = [(n.secret, n.replacement, n.service) for n in inj.scrubber.needles]
    assert sorted(needles) == sorted(
        [
            (b"pw", b"ph-reg", "reg"),
            (base64.b64encode(b"bob:pw"), b"ph-reg", "reg"),
            (base64.b64encode(b"amy:pw"), b"ph-reg", "reg"),
        ]
    )
    token = base64.b64encode(b"bob:pw")
    found: set[str] = set()
    replaced = inj.scrubber.replace(b"echo: Basic " + token + b" and pw", found)
    assert replaced == b"echo: Basic ph-reg and ph-reg" and found == {"reg"}
