"""GPU throughput of batched multi-camera detection (run on a machine with an NVIDIA GPU).

    python bench/gpu_batched.py --frames DIR --json [--out FILE]

One model serves many cameras by stacking their latest frames into one batch. This measures the
YOLO11n architecture (built from its YAML; throughput does not depend on the weights, and no weights
can be downloaded where this runs) in FP32 and FP16 at batch sizes 1..32 on real traffic frames:
letterbox + upload (CPU), forward, NMS (GPU), per batch and per image. cameras_at_10fps is how many
10 fps cameras one GPU keeps up with at that batch size, counting GPU time only.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", required=True, help="folder of JPEG frames")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--out", default="")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from ultralytics.nn.tasks import DetectionModel  # noqa: PLC0415
    from ultralytics.utils.nms import non_max_suppression  # noqa: PLC0415

    dev = torch.device("cuda")
    images = [cv2.imread(p) for p in sorted(glob.glob(str(Path(args.frames) / "*.jpg")))]

    def letterbox(img: Any) -> Any:
        h, w = img.shape[:2]
        r = args.imgsz / max(h, w)
        resized = cv2.resize(img, (round(w * r), round(h * r)), interpolation=cv2.INTER_LINEAR)
        out = np.full((args.imgsz, args.imgsz, 3), 114, np.uint8)
        out[: resized.shape[0], : resized.shape[1]] = resized
        return out

    t = time.perf_counter()
    boxed = [letterbox(im) for im in images]
    prep_ms = (time.perf_counter() - t) / len(images) * 1000
    base = DetectionModel("yolo11n.yaml", nc=80, verbose=False).to(dev).eval().fuse(verbose=False)
    rows = []
    for precision in ("fp32", "fp16"):
        model = base.half() if precision == "fp16" else base.float()
        dtype = torch.float16 if precision == "fp16" else torch.float32
        for bs in (1, 4, 8, 16, 32):
            batch_np = np.stack([boxed[i % len(boxed)] for i in range(bs)])
            with torch.inference_mode():

                def run(batch_np: Any = batch_np, model: Any = model, dtype: Any = dtype) -> Any:
                    x = torch.from_numpy(batch_np).to(dev, non_blocking=True)
                    x = x.permute(0, 3, 1, 2).to(dtype).div_(255)
                    pred = model(x)
                    return non_max_suppression(pred, conf_thres=0.1, iou_thres=0.5, max_det=300)

                for _ in range(5):
                    run()
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(args.iters):
                    run()
                torch.cuda.synchronize()
                per_batch = (time.perf_counter() - t) / args.iters * 1000
            rows.append(
                {
                    "precision": precision,
                    "batch": bs,
                    "ms_per_batch": round(per_batch, 2),
                    "images_per_s": round(bs / per_batch * 1000, 1),
                    "cameras_at_10fps": int(bs / per_batch * 1000 / 10),
                }
            )
    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "model": "yolo11n architecture (random init)",
        "imgsz": args.imgsz,
        "cpu_letterbox_ms_per_image": round(prep_ms, 2),
        "rows": rows,
    }
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
