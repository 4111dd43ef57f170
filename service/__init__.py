"""The REST inference service: faces found, cropped as in training and classified with onnxruntime."""
