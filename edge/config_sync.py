"""Pushed configs, server -> edge, applied without a restart; the edge's announcement, edge -> server.

The worker subscribes to the retained config topic of each camera group it serves
(contract/fleet.py). A config is validated exactly as ``citywatch config check`` validates a site
file (the pushed cameras merged into the worker's site); a valid one is applied to the running
cameras (:class:`edge.camera_set.CameraSet`: only cameras that differ are touched), a bad one is
rejected and every camera keeps its last good config. Either way the edge announces what it runs
(applied version, or the rejected version and why) on its retained announce topic, and each camera's
heartbeats carry the applied version.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citywatch import __version__
from citywatch.site import Camera, ConfigError, ConfigIssue, SiteConfig
from citywatch.site_doc import document, resolve_paths, validate
from contract.errors import ContractError
from contract.fleet import (
    EdgeAnnounce,
    EdgeConfig,
    HostFacts,
    ModelInfo,
    announce_topic,
    config_topic,
    dump,
    parse_config,
)
from edge.camera_set import CameraSet
from edge.settings import EdgeSettings

log = logging.getLogger(__name__)

#: How often the announcement is refreshed without a change (the fleet page's "last seen").
ANNOUNCE_S = 30.0
_checksums: dict[tuple[str, float], str | None] = {}


def model_checksum(model: str) -> str | None:
    """SHA-256 of a model file, or of a model folder's files (names and bytes, sorted); None if absent."""
    path = Path(model)
    if not path.exists():
        return None
    key = (str(path), path.stat().st_mtime)
    if key in _checksums:
        return _checksums[key]
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    _checksums[key] = digest.hexdigest()
    return _checksums[key]


def verify_models(pins: dict[str, str], base: Path) -> dict[str, str]:
    """Each pinned model whose file is missing or has another checksum, with the reason."""
    problems = {}
    for name, want in pins.items():
        path = Path(name) if Path(name).is_absolute() else base / name
        have = model_checksum(str(path))
        if have is None:
            problems[name] = f"model not found on this edge ({path})"
        elif have != want:
            problems[name] = f"checksum mismatch: the edge has {have[:12]}, the rollout wants {want[:12]}"
    return problems


def host_facts(outbox_dir: Path) -> HostFacts:
    gpu = None
    torch: Any = sys.modules.get("torch")  # only if the detector already imported it
    if torch is not None and torch.cuda.is_available():
        gpu = str(torch.cuda.get_device_name(0))[:200]
    target = outbox_dir if outbox_dir.exists() else Path.cwd()
    return HostFacts(cores=os.cpu_count() or 1, gpu=gpu, free_disk_bytes=shutil.disk_usage(target).free)


class ConfigSync:
    """Receives the group configs, applies or rejects them, announces the edge."""

    def __init__(
        self,
        site: SiteConfig,
        settings: EdgeSettings,
        cameras: CameraSet,
        served: list[str],
        *,
        prepare: Callable[[Camera], Camera] = lambda c: c,
        base_dir: Path | None = None,
    ) -> None:
        self.site = site
        self.settings = settings
        self.cameras = cameras
        self.prepare = prepare
        self.base_dir = base_dir or Path.cwd()
        self.served = set(served)
        self.groups = sorted({site.camera(c).group for c in served})
        self.applied: dict[str, int] = {}
        self.error = ""
        self.rejected: int | None = None
        self.applied_event = threading.Event()  # set after every applied or rejected config (tests)
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-sync", daemon=True)
        self._topics = {config_topic(site.site.id, g, site.mqtt_prefix): g for g in self.groups}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{settings.edge_id}-fleet", protocol=mqtt.MQTTv5
        )
        m = settings.mqtt
        if m.username:
            self.client.username_pw_set(m.username, m.password.get_secret_value() if m.password else None)
        if m.tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    # paho callbacks (network thread): enqueue only.
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            log.error("config sync: broker refused the connection: %s", reason_code)
            return
        for topic in self._topics:
            client.subscribe(topic, qos=1)
        self._inbox.put(("", b""))  # announce on every (re)connect

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((msg.topic, bytes(msg.payload)))

    def start(self) -> None:
        self._thread.start()
        m = self.settings.mqtt
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        self._thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()

    # worker thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=ANNOUNCE_S)
            except queue.Empty:
                self.announce()
                continue
            if item is None:
                return
            topic, payload = item
            if topic:
                try:
                    self.handle(self._topics[topic], payload)
                except Exception:  # a bug here must not end config sync
                    log.exception("config sync: handling a config failed")
            self.announce()

    def handle(self, group: str, payload: bytes) -> None:
        """Validate and apply one pushed config of ``group`` (or reject it, keeping what runs)."""
        if not payload:
            return  # the retained config was cleared: keep running what we have
        try:
            pushed = parse_config(payload)
        except ContractError as exc:
            self._reject(None, f"not a config message: {exc}")
            return
        if pushed.group != group or pushed.site_id != self.site.site.id:
            self._reject(pushed.version, f"config for {pushed.site_id}/{pushed.group} on the {group} topic")
            return
        if pushed.version <= self.applied.get(group, 0):
            log.info("config %s of %s: already applied (have %s)", pushed.version, group, self.applied[group])
            return
        try:
            site, wanted = self._merge(pushed)
        except ConfigError as exc:
            self._reject(pushed.version, "; ".join(str(i) for i in exc.issues)[:4000])
            return
        self.cameras.apply(site, wanted, pushed.version)
        self.site = site
        self.served = {c.id for c in wanted}
        self.applied[group] = pushed.version
        self.error, self.rejected = "", None
        self.applied_event.set()

    def _merge(self, pushed: EdgeConfig) -> tuple[SiteConfig, list[Camera]]:
        doc = document(self.site)
        others = [c for c in doc["cameras"] if c.get("group") != pushed.group]
        doc["cameras"] = others + [dict(c) for c in pushed.cameras]
        site = resolve_paths(
            validate(doc, f"config v{pushed.version} of group {pushed.group}"), self.base_dir
        )
        wanted = [self.prepare(c) for c in site.cameras if c.group == pushed.group or c.id in self.served]
        problems = verify_models(pushed.models, self.base_dir)
        if problems:  # a rollout whose model is not here, or not the one pinned: switch nothing
            where = f"config v{pushed.version} of group {pushed.group}"
            raise ConfigError(where, [ConfigIssue(f"models[{n!r}]", p) for n, p in problems.items()])
        return site, wanted

    def _reject(self, version: int | None, reason: str) -> None:
        log.error("config %s rejected, cameras keep their last good config: %s", version, reason)
        self.error, self.rejected = reason, version
        self.applied_event.set()

    def announce(self) -> None:
        version = max(self.applied.values()) if self.applied else None
        models = sorted({r.camera.detector.model for r in list(self.cameras.runners)})
        for group in self.groups:
            msg = EdgeAnnounce(
                site_id=self.site.site.id,
                group=group,
                edge_id=self.settings.edge_id,
                version=__version__,
                models=[ModelInfo(name=m, sha256=model_checksum(m)) for m in models],
                config_version=self.applied.get(group, version),
                config_error=self.error,
                rejected_version=self.rejected,
                cameras=sorted(r.camera.id for r in list(self.cameras.runners) if r.camera.group == group),
                host=host_facts(self.settings.outbox_dir),
                ts=datetime.now(UTC),
            )
            self.client.publish(
                announce_topic(self.site.site.id, group, self.site.mqtt_prefix), dump(msg), qos=1, retain=True
            )
