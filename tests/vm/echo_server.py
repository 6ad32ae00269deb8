"""A small HTTPS server for VM tests, in its own process: answers every request with the
request's headers as JSON, except Authorization, whose SHA-256 it returns instead (a real
API does not echo credentials back, and an echo would carry the secret into the guest).
/reflect is the careless server a hostile guest looks for: it reflects every request header,
Authorization included, into its response headers (Origin as a CORS server does) and body.
Usage: python echo_server.py CERT_PEM (prints its port)."""

from __future__ import annotations

import hashlib
import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/reflect"):
            self.reflect()
            return
        headers = dict(self.headers)
        auth = headers.pop("Authorization", None)
        digest = hashlib.sha256(auth.encode()).hexdigest() if auth is not None else None
        body = json.dumps(
            {"path": self.path, "headers": headers, "authorization_sha256": digest}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reflect(self) -> None:
        body = json.dumps(dict(self.headers)).encode()
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
        self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
