"""Health and Prometheus metrics of an edge worker over HTTP, and each camera's latest annotated frame.

GET /healthz                      200 when every camera is processing, 503 otherwise (JSON body)
GET /metrics                      Prometheus text format
GET /cameras/<id>/frame.jpg       the latest analysed frame with lines, zones and tracks drawn
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from edge.outbox import Outbox
from edge.snapshot import encode_jpeg

if TYPE_CHECKING:
    from edge.worker import CameraRunner

log = logging.getLogger(__name__)


def render_metrics(runners: Sequence[CameraRunner], outbox: Outbox, edge_id: str) -> str:
    lines = []

    def metric(name: str, kind: str, help_text: str, values: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP citywatch_edge_{name} {help_text}")
        lines.append(f"# TYPE citywatch_edge_{name} {kind}")
        for labels, value in values:
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"citywatch_edge_{name}{{{lab}}} {value}")

    cams = [({"edge": edge_id, "camera": r.camera.id}, r) for r in runners]
    metric(
        "frames_analysed_total",
        "counter",
        "Frames analysed: run through detection and analytics, or judged static by the motion gate.",
        [(lab, r.stats.frames) for lab, r in cams],
    )
    metric(
        "frames_detected_total",
        "counter",
        "Analysed frames that went through the detector.",
        [(lab, r.stats.detected) for lab, r in cams],
    )
    metric(
        "frames_skipped_motion_total",
        "counter",
        "Analysed frames not detected because the motion gate saw nothing move.",
        [(lab, r.stats.skipped_motion) for lab, r in cams],
    )
    metric(
        "detect_queue_ms",
        "gauge",
        "Mean time a frame of this camera waited for the shared detector (ms, since start).",
        [(lab, round(r.queue_ms, 2)) for lab, r in cams],
    )
    metric(
        "frames_dropped_total",
        "counter",
        "Frames replaced in the latest-frame slot before analysis.",
        [(lab, r.capture.dropped) for lab, r in cams],
    )
    metric(
        "stream_reconnects_total",
        "counter",
        "Times a stream was reopened.",
        [(lab, r.capture.reconnects) for lab, r in cams],
    )
    metric(
        "step_errors_total",
        "counter",
        "Processing steps that failed (logged; the camera carries on).",
        [(lab, r.stats.step_errors) for lab, r in cams],
    )
    metric(
        "stream_up",
        "gauge",
        "1 while the source delivers frames.",
        [(lab, int(r.capture.connected)) for lab, r in cams],
    )
    metric(
        "fps",
        "gauge",
        "Analysed frames per second over the last heartbeat period.",
        [(lab, round(r.stats.last_fps, 3)) for lab, r in cams],
    )
    metric(
        "inference_ms",
        "gauge",
        "Mean detect+track time per frame over the last heartbeat period.",
        [(lab, round(r.stats.last_infer_ms, 2)) for lab, r in cams],
    )
    metric(
        "crossings_total",
        "counter",
        "Line crossings counted.",
        [(lab, r.pipeline.crossings_total) for lab, r in cams],
    )
    metric(
        "incidents_total",
        "counter",
        "Incidents started.",
        [(lab, r.pipeline.incidents_started) for lab, r in cams],
    )
    metric(
        "mqtt_connected",
        "gauge",
        "1 while connected to the broker.",
        [(lab, int(r.publisher.connected)) for lab, r in cams],
    )
    metric(
        "messages_published_total",
        "counter",
        "Messages acknowledged by the broker.",
        [(lab, r.publisher.published) for lab, r in cams],
    )
    metric(
        "outbox_depth",
        "gauge",
        "Messages waiting in the durable outbox.",
        [({"edge": edge_id}, outbox.depth())],
    )
    metric(
        "outbox_dropped_total",
        "counter",
        "Data messages dropped by the outbox cap.",
        [({"edge": edge_id}, outbox.dropped())],
    )
    return "\n".join(lines) + "\n"


class MetricsServer:
    def __init__(self, host: str, port: int, runners: Sequence[CameraRunner], outbox: Outbox, edge_id: str):

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(
                        200, render_metrics(runners, outbox, edge_id).encode(), "text/plain; version=0.0.4"
                    )
                elif path == "/healthz":
                    cams = {
                        r.camera.id: {
                            "processing": r.is_alive(),
                            "stream_up": r.capture.connected,
                            "mqtt": r.publisher.connected,
                            "error": r.stats.error or r.capture.last_error,
                        }
                        for r in runners
                    }
                    ok = all(c["processing"] and c["stream_up"] for c in cams.values())
                    body = json.dumps({"ok": ok, "outbox_depth": outbox.depth(), "cameras": cams}).encode()
                    self._send(200 if ok else 503, body, "application/json")
                elif path.startswith("/cameras/") and path.endswith("/frame.jpg"):
                    # Looked up per request: cameras come and go with pushed configs (edge/camera_set.py).
                    runner = next((r for r in list(runners) if r.camera.id == path.split("/")[2]), None)
                    image = runner.pipeline.annotated() if runner else None
                    if image is None:
                        self._send(404, b'{"detail": "no frame"}', "application/json")
                    else:
                        self._send(200, encode_jpeg(image), "image/jpeg")
                else:
                    self._send(404, b'{"detail": "not found"}', "application/json")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="edge-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
