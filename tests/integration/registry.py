"""A minimal Confluent-compatible schema registry on 127.0.0.1, for tests.

Serves ``GET /schemas/ids/{id}`` (what the worker calls) for schemas registered in-process.
The real Confluent registry is not available from Maven Central here; this speaks the same
subset of its REST API.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Registry:
    def __init__(self, port: int = 0) -> None:
        self.schemas: dict[int, str] = {}
        self.fetches = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
                schema = registry.schemas.get(int(match.group(1))) if match else None
                registry.fetches += 1
                if schema is None:
                    body, status = {"error_code": 40403, "message": "Schema not found"}, 404
                else:
                    body, status = {"schema": schema}, 200
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def register(self, schema_id: int, schema: dict[str, Any]) -> None:
        self.schemas[schema_id] = json.dumps(schema)

    def __enter__(self) -> Registry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
