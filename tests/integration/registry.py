"""A minimal schema registry on 127.0.0.1, for tests: Confluent's reads, Apicurio's writes.

Serves ``GET /schemas/ids/{id}`` (what the worker calls; also under Apicurio's Confluent
compatibility prefix ``/apis/ccompat/v7``) for schemas registered in-process with
``register``, and the part of Apicurio Registry's v2 API that Apicurio's serializer
(and so its Kafka Connect converter) calls to auto-register a writer schema:

- ``POST /apis/registry/v2/groups/{group}/artifacts`` (``X-Registry-ArtifactId``,
  ``X-Registry-ArtifactType``, the schema as body, or ``{"content": ...}`` in the
  ``application/create.extended+json`` form): the artifact's metadata, with a
  ``contentId`` per distinct schema text and a ``globalId`` per artifact version;
- ``GET /apis/registry/v2/ids/contentIds/{id}`` and ``.../ids/globalIds/{id}``: the schema.

A content id is a Confluent schema id: the converter, told ``apicurio.registry.as-confluent``
and ``apicurio.registry.use-id=contentId``, writes it as the 4-byte id of Confluent's wire
format, and ``GET /schemas/ids/{id}`` serves the schema for it. Global ids are counted from
``GLOBAL_ID_BASE``, far from the content ids, so a converter left writing global ids names
an id this registry does not have (404) rather than another schema.

The real Confluent and Apicurio registries are not available from Maven Central here.
``python -m tests.integration.registry --port N`` runs one as a process of its own.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GLOBAL_ID_BASE = 1_000_000
_V2 = "/apis/registry/v2"
_CCOMPAT = "/apis/ccompat/v7"
_CONFLUENT_JSON = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True)
class Artifact:
    """One version Apicurio's serializer registered: ``artifact_id`` is TopicIdStrategy's
    subject (``<topic>-key`` / ``<topic>-value``)."""

    group_id: str
    artifact_id: str
    artifact_type: str
    version: int
    global_id: int
    content_id: int


class Registry:
    def __init__(self, port: int = 0) -> None:
        self.schemas: dict[int, str] = {}
        self.artifacts: list[Artifact] = []
        self.fetches = 0
        self._lock = threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.startswith(_V2 + "/ids/"):
                    registry._answer_v2_id(self, path[len(_V2) :])
                    return
                if path.startswith(_CCOMPAT + "/"):
                    path = path[len(_CCOMPAT) :]
                if path == "/subjects":
                    _send_json(self, 200, sorted({a.artifact_id for a in registry.artifacts}))
                    return
                match = re.fullmatch(r"/schemas/ids/(\d+)", path)
                schema = registry.schemas.get(int(match.group(1))) if match else None
                registry.fetches += 1
                if schema is None:
                    _send_json(self, 404, {"error_code": 40403, "message": "Schema not found"})
                else:
                    _send_json(self, 200, {"schema": schema})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                match = re.fullmatch(_V2 + r"/groups/([^/]+)/artifacts", path)
                if match is None:
                    _send_json(self, 404, {"error_code": 404, "message": "Not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if "create.extended" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(body)["content"]
                artifact = registry._create_artifact(
                    match.group(1),
                    self.headers.get("X-Registry-ArtifactId") or "",
                    self.headers.get("X-Registry-ArtifactType") or "AVRO",
                    body,
                )
                _send_json(self, 200, _metadata(artifact))

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def register(self, schema_id: int, schema: dict[str, Any]) -> None:
        self.schemas[schema_id] = json.dumps(schema)

    def artifact(self, artifact_id: str) -> Artifact:
        """The latest version registered under ``artifact_id`` (KeyError when none)."""
        with self._lock:
            for found in reversed(self.artifacts):
                if found.artifact_id == artifact_id:
                    return found
        raise KeyError(artifact_id)

    def _create_artifact(
        self, group_id: str, artifact_id: str, artifact_type: str, content: str
    ) -> Artifact:
        """``ifExists=RETURN_OR_UPDATE``: the same text under the same artifact is the version
        it already has; new text is a new version (and a new content id unless the text is
        already known under another artifact)."""
        with self._lock:
            content_id = next((i for i, text in self.schemas.items() if text == content), None)
            if content_id is None:
                content_id = max(self.schemas, default=0) + 1
                self.schemas[content_id] = content
            versions = [
                a for a in self.artifacts if (a.group_id, a.artifact_id) == (group_id, artifact_id)
            ]
            for existing in versions:
                if existing.content_id == content_id:
                    return existing
            artifact = Artifact(
                group_id=group_id,
                artifact_id=artifact_id,
                artifact_type=artifact_type,
                version=len(versions) + 1,
                global_id=GLOBAL_ID_BASE + len(self.artifacts) + 1,
                content_id=content_id,
            )
            self.artifacts.append(artifact)
            return artifact

    def _answer_v2_id(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        match = re.fullmatch(r"/ids/(contentIds|globalIds)/(\d+)", path)
        schema = None
        if match:
            wanted = int(match.group(2))
            with self._lock:
                if match.group(1) == "contentIds":
                    schema = self.schemas.get(wanted)
                else:
                    found = [a for a in self.artifacts if a.global_id == wanted]
                    schema = self.schemas[found[0].content_id] if found else None
        if schema is None:
            _send_json(handler, 404, {"error_code": 404, "message": "No content with id"})
            return
        _send(handler, 200, schema.encode(), "application/json")

    def __enter__(self) -> Registry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _metadata(artifact: Artifact) -> dict[str, Any]:
    """Apicurio v2's ArtifactMetaData, the fields its client reads."""
    return {
        "groupId": artifact.group_id,
        "id": artifact.artifact_id,
        "type": artifact.artifact_type,
        "version": str(artifact.version),
        "globalId": artifact.global_id,
        "contentId": artifact.content_id,
        "state": "ENABLED",
        "references": [],
    }


def _send_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    _send(handler, status, json.dumps(body).encode(), _CONFLUENT_JSON)


def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    port = parser.parse_args().port
    with Registry(port=port) as registry:
        print(registry.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
