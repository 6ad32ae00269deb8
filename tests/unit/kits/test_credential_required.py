"""Spec conformance for credentials (issue 16, item 5): v3 `credential@1` entries are
required unless marked optional; v2 credentials are optional unless `required: true`;
oauth blocks keep their credential file's format and resource hosts."""

from __future__ import annotations

from sandkit.kits.loader import load_kit
from tests.conftest import WriteKit

V3 = """
schemaVersion: "3"
kind: mixin
capabilities:
  - type: com.docker.sandbox/network-policy@1
    config: {runtime: {allow: [a.test, b.test]}}
  - type: com.docker.sandbox/credential@1
    config:
      service: must
      apiKey: {name: MUST_KEY, inject: [{domain: a.test, header: X-Key}]}
  - type: com.docker.sandbox/credential@1
    optional: true
    config:
      service: may
      oauth:
        tokenEndpoint: {host: b.test, path: /token}
        resourceHosts: [a.test]
        sentinels: {accessToken: at, refreshToken: rt}
        credentialFile: {path: ~/.x.toml, format: toml, structure: {t: "{{.AccessToken}}"}}
"""

V2 = """
schemaVersion: "2"
kind: mixin
name: v2creds
permissions: {network: {allow: [a.test]}}
credentials:
  - service: plain
    apiKey: {name: PLAIN_KEY, inject: [{domain: a.test, header: X-Key}]}
  - service: marked
    required: true
    apiKey: {name: MARKED_KEY, inject: [{domain: a.test, header: X-Other}]}
"""


def test_v3_credentials_are_required_by_default(write_kit: WriteKit) -> None:
    kit = load_kit(write_kit(V3, "v3creds")).kit
    by_service = {c.service: c for c in kit.credentials}
    assert by_service["must"].required is True
    assert by_service["may"].required is False
    oauth = by_service["may"].oauth
    assert oauth is not None
    assert oauth.resource_hosts == ("a.test",) and oauth.credential_format == "toml"
    assert oauth.response_fields == {}  # the defaults apply where they are used (net/oauth)


def test_v2_credentials_are_optional_by_default(write_kit: WriteKit) -> None:
    kit = load_kit(write_kit(V2, "v2creds")).kit
    assert {c.service: c.required for c in kit.credentials} == {"plain": False, "marked": True}
