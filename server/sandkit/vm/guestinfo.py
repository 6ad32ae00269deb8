"""What the host knows of the guest that vm/image.py builds, in one place: the agent's user,
where the share is mounted, the proxy address its tools are given, and the commands that
warm a guest before it is saved or adopted. (guest/agent.py imports nothing of sandkit's
and repeats the share's path.)"""

from __future__ import annotations

from sandkit.guestuser import AGENT_UID as AGENT_UID  # the share's files are the agent's
from sandkit.guestuser import AGENT_USER as AGENT_USER
from sandkit.vm.qemu import PROXY_ADDRESS, PROXY_PORT

SHARE_MOUNT = "/run/sandkit/share"
GUEST_PROXY = f"{PROXY_ADDRESS}:{PROXY_PORT}"  # the sk.proxy kernel parameter
# Run on every adoption first, and before a golden is saved: their files are then in the
# guest's page cache (TCG's translations are not; each clone primes again).
PRIME = (["true"], ["sh", "-c", "cat /dev/null"], ["bash", "-lc", "true"])
