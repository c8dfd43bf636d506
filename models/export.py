"""Export a YOLO model for the edge: ONNX, OpenVINO (INT8 or FP16) or TensorRT.

    python models/export.py yolo11n.pt --format openvino --int8 --imgsz 640
    python models/export.py yolo11n.pt --format engine --half      # on a machine with an NVIDIA GPU

The exported file or folder is what a camera's ``detector.model`` points at.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a .pt file or an Ultralytics model name")
    parser.add_argument("--format", choices=["onnx", "openvino", "engine"], default="openvino")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--int8", action="store_true", help="INT8 quantization (OpenVINO, TensorRT)")
    parser.add_argument("--half", action="store_true", help="FP16 (OpenVINO, TensorRT)")
    parser.add_argument("--data", default="coco128.yaml", help="calibration data set for --int8")
    args = parser.parse_args()

    from ultralytics import YOLO  # noqa: PLC0415

    model = YOLO(args.model)
    extra = {"data": args.data} if args.int8 else {}
    path = model.export(format=args.format, imgsz=args.imgsz, int8=args.int8, half=args.half, **extra)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
