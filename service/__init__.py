"""The REST inference service: faces found, cropped as in training and classified with onnxruntime."""

import model_store  # noqa: F401  (first: it turns onnxruntime's telemetry off before anything imports onnxruntime)
