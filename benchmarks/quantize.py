"""int8 students: onnxruntime static quantisation calibrated on FER2013 val, judged on FER2013 test.

A quantised variant is worth publishing only if its test accuracy is less than 0.5 points below the float
model's (the issue's bar) and it is faster; both accuracies and both speeds are reported. Calibration method
and layout are chosen on the validation split, never on test. The int8 files are written to ``--out``;
publishing them into the store is the lead's decision.

``python -m benchmarks.quantize --store models --out benchmarks/out/int8``
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from benchmarks.model_speed import timed_block
from benchmarks.server import REPO, SHARED
from model_store.metadata import SIZES
from model_store.preprocess import PreprocessSpec, face_input, to_tensor
from model_store.store import ModelStore, ResolvedModel
from service.inference import session_options

FER2013 = SHARED / "datasets" / "fer2013"
MAX_DROP_POINTS = 0.5
METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}


class Batches(CalibrationDataReader):
    """Equal batches (the histogram calibrators stack them); the remainder is left out."""

    def __init__(self, inputs: np.ndarray, name: str, batch: int = 128) -> None:
        self._batches = iter([{name: inputs[i : i + batch]} for i in range(0, len(inputs) - batch + 1, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def split(name: str, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from trainer.data import load_image_folder

    data = load_image_folder(FER2013 / name)
    inputs = to_tensor(np.stack([face_input(face, spec) for face in data.images]), spec)
    return inputs, data.labels, data.classes


def accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), session_options(0), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    return float((logits.argmax(1) == labels).mean())


def speed(path: Path, seconds: float) -> dict[str, float]:
    session = ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = [1, *session.get_inputs()[0].shape[1:]]
    one = np.random.default_rng(0).random(shape, dtype=np.float32)
    many = np.random.default_rng(0).random([256, *shape[1:]], dtype=np.float32)
    latency = timed_block(lambda: session.run(None, {name: one}), seconds)
    batch = timed_block(lambda: session.run(None, {name: many}), seconds)
    return {"latency_ms_median": float(np.median(latency)) * 1e3, "throughput_256": 256 * len(batch) / sum(batch)}


def quantize(resolved: ResolvedModel, calibration: np.ndarray, method: str, out: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(resolved.onnx_path), str(prepared))
        quantize_static(
            str(prepared),
            str(out),
            Batches(calibration, resolved.metadata.input.name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=METHODS[method],
            # Only the arithmetic: the exported graph pads with -inf before its second max-pool, a range no
            # int8 scale can hold, and pooling and padding gain nothing from int8 anyway.
            op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        )
    return out


def run(store: ModelStore, out: Path, seconds: float) -> dict[str, object]:
    if not FER2013.is_dir():
        return {"skipped": f"needs {FER2013}"}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    cache: dict[PreprocessSpec, tuple] = {}
    for size in SIZES:
        resolved = store.resolve(size)
        spec = resolved.metadata.preprocess
        if spec not in cache:
            cache[spec] = (split("val", spec), split("test", spec))
        (val_x, val_y, _), (test_x, test_y, classes) = cache[spec]
        if list(classes) != resolved.metadata.labels:
            rows.append({"size": size, "skipped": f"labels {resolved.metadata.labels} are not FER2013's"})
            continue
        candidates = {}
        for method in METHODS:
            path = quantize(
                resolved, val_x, method, out / f"{resolved.name}-v{resolved.metadata.version}-{method}.onnx"
            )
            candidates[method] = (accuracy(path, val_x, val_y), path)
        method = max(candidates, key=lambda m: candidates[m][0])
        int8_path = candidates[method][1]
        float_val = accuracy(resolved.onnx_path, val_x, val_y)
        float_test = accuracy(resolved.onnx_path, test_x, test_y)
        int8_test = accuracy(int8_path, test_x, test_y)
        float_speed, int8_speed = speed(resolved.onnx_path, seconds), speed(int8_path, seconds)
        drop = (float_test - int8_test) * 100
        faster = int8_speed["throughput_256"] > float_speed["throughput_256"]
        rows.append(
            {
                "size": size,
                "version": resolved.metadata.version,
                "calibration": method,
                "val_accuracy": {"float32": float_val, **{m: acc for m, (acc, _) in candidates.items()}},
                "test_accuracy": {"float32": float_test, "int8": int8_test},
                "drop_points": drop,
                "float32": {**float_speed, "file_bytes": resolved.onnx_path.stat().st_size},
                "int8": {**int8_speed, "file_bytes": int8_path.stat().st_size, "path": str(int8_path)},
                "publishable": drop < MAX_DROP_POINTS and faster,
            }
        )
    return {
        "calibration_split": "fer2013/val",
        "test_split": "fer2013/test",
        "max_drop_points": MAX_DROP_POINTS,
        "sizes": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "int8")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per speed figure")
    args = parser.parse_args()
    print(json.dumps(run(ModelStore(args.store), args.out, args.seconds), indent=2))


if __name__ == "__main__":
    main()
