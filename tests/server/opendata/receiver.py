"""A local NGSI-LD context broker stand-in for the push tests: it checks each upsert's request shape and
every entity against the shared schema, records what it accepted, and fails on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from server.opendata.ngsi import to_key_values
from tests.server.opendata import schemas


@dataclass
class Broker:
    url: str = ""
    fail_next: int = 0  # answer 503 to this many requests first
    always_fail: bool = False
    entities: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    problems: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _check(method: str, path: str, headers: Any, body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    problems: list[str] = []
    if method != "POST" or path != "/ngsi-ld/v1/entityOperations/upsert":
        problems.append(f"{method} {path}")
    if headers.get("Content-Type") != "application/ld+json":
        problems.append(f"content type {headers.get('Content-Type')}")
    try:
        doc = json.loads(body)
    except ValueError:
        return [], [*problems, "body is not JSON"]
    if not isinstance(doc, list) or not doc:
        return [], [*problems, "body is not a non-empty array of entities"]
    for e in doc:
        if not str(e.get("id", "")).startswith(f"urn:ngsi-ld:{e.get('type')}:"):
            problems.append(f"bad id {e.get('id')}")
        if "@context" not in e:
            problems.append(f"{e.get('id')}: no @context (ld+json needs one)")
        if "track_ids" in json.dumps(e) or "snapshot" in json.dumps(e):
            problems.append(f"{e.get('id')}: personal data")
        problems += [f"{e.get('id')}: {m}" for m in schemas.errors(to_key_values(e))]
    return doc, problems


@contextmanager
def running_broker() -> Iterator[Broker]:
    state = Broker()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests += 1
                state.headers.append(dict(self.headers))
                if state.always_fail or state.fail_next > 0:
                    state.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                doc, problems = _check("POST", self.path, self.headers, body)
                state.problems += problems
                if problems:
                    self.send_response(400)
                    self.end_headers()
                    return
                state.entities += doc
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
