"""Load generator for the TLS-terminating path: N keep-alive connections through a proxy
(CONNECT + TLS) doing GETs for a fixed time. Prints "requests N seconds S errors E".

    python bench/load.py --proxy URL --url https://HOST:PORT/ --ca CA.pem [--conns 16] [--seconds 8]"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time

import aiohttp


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)
    done = errors = 0
    deadline = time.monotonic() + args.seconds
    connector = aiohttp.TCPConnector(limit=args.conns, ssl=ctx)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                try:
                    async with session.get(args.url, proxy=args.proxy) as response:
                        await response.read()
                        if response.status == 200:
                            done += 1
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.conns)))
        elapsed = time.monotonic() - start
    print(f"requests {done} seconds {elapsed:.3f} errors {errors}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
