"""The egress proxy: an HTTP/1.1 forward proxy with CONNECT, run on asyncio streams.

Per client connection (``server``): read a request head; decide with the policy
(``decide``); then
- plain HTTP: forward to the origin, keep-alive both sides, bodies streamed (``forward``,
  ``exchange``);
- CONNECT to a host with no credential: tunnel bytes both ways with back-pressure
  (``tunnel``);
- CONNECT to a host that carries a credential (or has method/path rules): terminate TLS
  with a leaf from the sandbox CA, inject the credential, forward over verified TLS.
Names are resolved before connecting and internal addresses refused unless a rule names
the host exactly (SSRF guard); the connection goes to the checked address (no rebinding).
In a terminated tunnel every request must name the tunnel's host, and every response is
scrubbed of real secrets before it goes back to the client. The proxy's own answers are
built in ``sandkit.net.answers``.
"""

from sandkit.net.proxy.decide import Blocked
from sandkit.net.proxy.server import EgressProxy
from sandkit.net.proxy.settings import Ask, ProxySettings

__all__ = ["Ask", "Blocked", "EgressProxy", "ProxySettings"]
