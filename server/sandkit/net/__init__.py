"""The egress proxy: network policy (pure), TLS interception, credential injection and the
decision log. Knows nothing of VMs, sync or editors: it is given rules and a port."""
