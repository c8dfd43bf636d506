"""Counting accuracy of `citywatch eval` on every labelled clip in ../shared/labels.

python bench/eval_all.py --json [--model M] [--stride N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolo11n_int8_openvino_model"))
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--labels", default=str(SHARED / "labels"))
    ap.add_argument("--videos", default=str(SHARED / "videos"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for label in sorted(Path(args.labels).glob("*.json")):
        video = next(Path(args.videos).glob(label.stem + ".*"), None)
        if video is None:
            continue
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "citywatch.cli",
                "--log-level",
                "WARNING",
                "eval",
                "--labels",
                str(label),
                "--video",
                str(video),
                "--model",
                args.model,
                "--stride",
                str(args.stride),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=dict(os.environ),
        )
        report = json.loads(out.stdout)
        rows.append(
            {
                "clip": label.stem,
                "overall_accuracy": report["overall_accuracy"],
                "counted": report["counted_total"],
                "truth": report["truth_total"],
                "errors": [c for c in report["cells"] if c["counted"] != c["truth"]],
            }
        )
    result = {"model": args.model, "stride": args.stride, "clips": rows}
    if args.json:
        print(json.dumps(result))
    else:
        for r in rows:
            print(f"{r['clip']:40} {r['overall_accuracy']:.3f}  ({r['counted']} counted, {r['truth']} true)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
