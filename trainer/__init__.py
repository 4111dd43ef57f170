"""Training: datasets, architectures, knowledge distillation, evaluation and ONNX export (needs torch)."""

import model_store  # noqa: F401  (first: it turns onnxruntime telemetry off before onnxruntime is imported)
