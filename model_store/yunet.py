"""YuNet's ONNX graph on onnxruntime at any input size, its output decoded as OpenCV's FaceDetectorYN decodes it.

The model zoo's file fixes its input at 1x3x640x640; its layers do not depend on the size, so the input and output
shapes are made symbolic when the graph is loaded and one session serves every image size. On one core onnxruntime
runs it in about half the time OpenCV's dnn module takes (14.1 against 29.9 ms at 640x480, 7.4 against 16.0 at
480x352, measured side by side), the default server answers 187 requests/s instead of 147 (docs/service.md), and
a session is safe to share between threads, so no pool of detector objects is needed.

The decoding follows OpenCV's ``FaceDetectorYNImpl`` (modules/objdetect/src/face_detect.cpp, 4.x): the image is
padded bottom and right to a multiple of 32, fed as BGR 0-255 floats; at each stride s of 8, 16 and 32, the cell
(row, col) scores sqrt(cls · obj) and predicts the box centre ((col, row) + (dx, dy))·s and size exp(dw, dh)·s and
five landmarks ((col, row) + offsets)·s; boxes above the score threshold go through non-maximum suppression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

STRIDES = (8, 16, 32)
# Every grid of the three strides must tile the padded image exactly.
PAD_MULTIPLE = 32


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # float32 [N, 4]: x, y, width, height in the input image's pixels
    landmarks: np.ndarray  # float32 [N, 5, 2]: YuNet's five points (x, y)
    scores: np.ndarray  # float32 [N], in [0, 1], highest first


def _shape_schema() -> type:
    """The few messages of ONNX's schema on the path from a model to its inputs' and outputs' dimensions.

    The serving image has protobuf (onnxruntime needs it) but not the onnx package (55 MB): a message parsed with
    this partial schema keeps every field it does not name and writes them back unchanged."""
    file = descriptor_pb2.FileDescriptorProto(name="microexp_onnx_shapes.proto", package="microexp_onnx_shapes")
    optional, repeated = (
        descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    kinds = descriptor_pb2.FieldDescriptorProto
    # message: (field, number, label, type or message name), numbered as in onnx/onnx.proto
    messages = {
        "Dimension": [("dim_value", 1, optional, kinds.TYPE_INT64), ("dim_param", 2, optional, kinds.TYPE_STRING)],
        "Shape": [("dim", 1, repeated, "Dimension")],
        "Tensor": [("shape", 2, optional, "Shape")],
        "Type": [("tensor_type", 1, optional, "Tensor")],
        "ValueInfo": [("type", 2, optional, "Type")],
        "Graph": [("input", 11, repeated, "ValueInfo"), ("output", 12, repeated, "ValueInfo"),
                  ("value_info", 13, repeated, "ValueInfo")],
        "Model": [("graph", 7, optional, "Graph")],
    }  # fmt: skip
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field, number, label, kind in fields:
            if isinstance(kind, str):
                message.field.add(name=field, number=number, label=label, type=kinds.TYPE_MESSAGE, type_name=kind)
            else:
                message.field.add(name=field, number=number, label=label, type=kind)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("microexp_onnx_shapes.Model"))


def _any_size(path: Path) -> bytes:
    """The graph with its input's height and width and its outputs' anchor counts made symbolic."""
    model = _shape_schema()()
    model.ParseFromString(path.read_bytes())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    for dim in [*dims[2:4], *(output.type.tensor_type.shape.dim[1] for output in model.graph.output)]:
        dim.ClearField("dim_value")  # a oneof with dim_param in ONNX's schema
    del model.graph.value_info[:]  # intermediate shapes inferred for 640x640
    return model.SerializeToString()


class YuNetGraph:
    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(_any_size(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES]

    def detect(self, bgr: np.ndarray, score_threshold: float, nms_threshold: float, top_k: int = 5000) -> Detections:
        """Faces in a uint8 BGR image [H, W, 3]."""
        height, width = bgr.shape[:2]
        padded_h, padded_w = (-(-side // PAD_MULTIPLE) * PAD_MULTIPLE for side in (height, width))
        padded = cv2.copyMakeBorder(bgr, 0, padded_h - height, 0, padded_w - width, cv2.BORDER_CONSTANT, value=0)
        blob = padded.transpose(2, 0, 1)[np.newaxis].astype(np.float32)
        outputs = dict(zip(self._outputs, self._session.run(self._outputs, {self._input: blob}), strict=True))
        boxes, landmarks, scores = [], [], []
        for stride in STRIDES:
            rows, cols = padded_h // stride, padded_w // stride
            cells = np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), axis=-1).reshape(-1, 2).astype(np.float32)
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            keep = score >= score_threshold
            bbox, kps, cell = outputs[f"bbox_{stride}"][0][keep], outputs[f"kps_{stride}"][0][keep], cells[keep]
            centre = (cell + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:]) * stride
            boxes.append(np.concatenate([centre - size / 2, size], axis=1))
            landmarks.append((kps.reshape(-1, 5, 2) + cell[:, np.newaxis]) * stride)
            scores.append(score[keep])
        all_boxes, all_landmarks, all_scores = (
            np.concatenate(part).astype(np.float32) for part in (boxes, landmarks, scores)
        )
        # OpenCV suppresses on the boxes truncated to whole pixels, and not at all when one face is left.
        whole = all_boxes.astype(np.int32).tolist()
        kept = cv2.dnn.NMSBoxes(whole, all_scores.tolist(), score_threshold, nms_threshold, top_k=top_k)
        order = np.arange(len(all_scores)) if len(all_scores) < 2 else np.asarray(kept, dtype=np.int64).reshape(-1)
        order = order[np.argsort(-all_scores[order], kind="stable")]
        return Detections(all_boxes[order], all_landmarks[order], all_scores[order])
