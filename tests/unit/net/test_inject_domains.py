"""A secret goes to its credential's own domain and to nothing that merely looks like it:
not a subdomain, not a name that ends or starts with the same letters, whatever the case
or a trailing dot (the one spelling DNS treats as the same name)."""

from __future__ import annotations

import pytest

from sandkit.kits.model import Credential, Inject, Origin
from sandkit.net.inject import BoundCredential, Injector

ORIGIN = Origin(kit="k", file="f", line=1, column=1)
SECRET = "sk-real-7d1e"
PLACEHOLDER = "sandkit-placeholder-api-9f"


def injector(domain: str = "api.test") -> Injector:
    credential = Credential(
        service="api",
        inject=(Inject(domain=domain, header="Authorization", format="Bearer %s"),),
        origin=ORIGIN,
    )
    return Injector([BoundCredential(credential, SECRET, PLACEHOLDER)])


SAME = ["api.test", "API.TEST", "Api.Test", "api.test."]
LOOK_ALIKES = [
    "x.api.test",  # a subdomain
    "a.b.api.test",
    ".api.test",
    "evilapi.test",  # ends with the same letters
    "evil-api.test",
    "api.test.evil",  # starts with them
    "api.tests",
    "api.test-evil",
    "pi.test",
    "api.tes",
    "api",
    "test",
    "apiXtest",
    "",
]


@pytest.mark.parametrize("host", SAME)
def test_the_credentials_own_domain_gets_the_secret(host: str) -> None:
    inj = injector()
    assert inj.intercepts(host)
    out = inj.apply(host, "/v1", [("Authorization", f"Bearer {PLACEHOLDER}")], secure=True)
    assert out.headers == [("Authorization", f"Bearer {SECRET}")]
    assert out.injected == ["api"] and out.warnings == []


@pytest.mark.parametrize("host", LOOK_ALIKES)
def test_a_look_alike_never_does(host: str) -> None:
    inj = injector()
    assert not inj.intercepts(host)
    sent = [("Authorization", f"Bearer {PLACEHOLDER}"), ("X-Other", "1")]
    out = inj.apply(host, "/v1", sent, secure=True)
    assert out.headers == sent  # the placeholder stays a placeholder
    assert out.injected == []
    assert out.warnings == [
        f"placeholder for 'api' sent to {host.lower().rstrip('.')}, which is not one of its "
        "domains; left as is"
    ]
    assert SECRET not in repr(out)


@pytest.mark.parametrize("domain", ["API.Test", "api.test.", "Api.TEST."])
def test_a_domain_the_kit_spells_otherwise_is_the_same_domain(domain: str) -> None:
    inj = injector(domain)
    for host in SAME:
        assert inj.intercepts(host)
        assert inj.apply(host, "/", [], secure=True).headers == [
            ("Authorization", f"Bearer {SECRET}")
        ]
    for host in LOOK_ALIKES:
        assert not inj.intercepts(host)
        assert inj.apply(host, "/", [], secure=True).headers == []


def test_a_wildcard_is_not_a_domain() -> None:
    """A kit's inject domain is one host: '*.api.test' matches no request host."""
    inj = injector("*.api.test")
    for host in ["x.api.test", "api.test", "a.api.test"]:
        assert not inj.intercepts(host)
        assert inj.apply(host, "/", [], secure=True).headers == []
