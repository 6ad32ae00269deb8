"""python -m sandkit.sandbox.supervisor NAME [IMAGE_DIR]: what lifecycle.start spawns."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from sandkit.sandbox.store import Store
from sandkit.sandbox.supervisor.process import Supervisor


async def main(name: str, image: str | None = None) -> int:
    supervisor = Supervisor(Store().get(name), Path(image) if image else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.request_stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # outlive the terminal that started us
    return await supervisor.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
