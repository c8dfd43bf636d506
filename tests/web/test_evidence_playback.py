"""An evidence clip as the edge encodes it plays in headless Chromium without plug-ins: the <video>
element loads its metadata, has a finite duration and reaches the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.edge.test_evidence import clip_of_a_crash


def test_clip_plays_in_chromium(browser: Any, tmp_path: Path) -> None:
    clip, _, path = clip_of_a_crash(tmp_path)
    page_file = tmp_path / "clip.html"
    page_file.write_text(f'<video id="v" src="{path.name}" muted preload="auto"></video>', encoding="utf-8")
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        page.wait_for_function("document.getElementById('v').readyState >= 1", timeout=15_000)
        info = page.evaluate(
            """() => {
                const v = document.getElementById('v');
                return {duration: v.duration, w: v.videoWidth, h: v.videoHeight, error: v.error};
            }"""
        )
    finally:
        page.close()
    assert info["error"] is None
    assert (info["w"], info["h"]) == (clip.width, clip.height)
    assert abs(info["duration"] - clip.duration_s) < 1.0
