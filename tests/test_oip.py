"""The Open Inference Protocol (KServe v2 REST) on the real server: the same answers as /v1, the metadata Triton
would report for the same store, readiness, and errors in the protocol's shape."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as tritonclient
import tritonclient.http.aio as tritonclient_aio
from fastapi.testclient import TestClient
from server_fixture import ASTRONAUT_FACE, ServiceProcess, astronaut, encode
from tritonclient.utils import InferenceServerException

from model_store import triton
from model_store.preprocess import PreprocessSpec, face_input, to_gray, to_tensor
from model_store.store import ModelStore
from model_store.vocabulary import SIZES
from service.app import create_app
from service.settings import Settings

pytest_plugins = ["server_fixture"]


def crop() -> np.ndarray:
    x, y, w, h = ASTRONAUT_FACE
    return astronaut()[y : y + h, x : x + w]


def model_of(size: str) -> str:
    return f"microexpnet_{size.lower()}"


def spec_of(client: httpx.Client, size: str) -> PreprocessSpec:
    """The preprocessing a client reads from the model's metadata in /v1/models."""
    (entry,) = [entry for entry in client.get("/v1/models").json()["models"] if entry["size"] == size]
    return PreprocessSpec.model_validate(entry["versions"][0]["preprocess"])


def tensor_of(images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Already-cropped faces as the model's input tensor, prepared as the server prepares them with detect=false."""
    return to_tensor(np.stack([face_input(to_gray(image), spec) for image in images]), spec)


def infer_body(tensor: np.ndarray, nested: bool = False, **extra: Any) -> dict[str, Any]:
    data = tensor.tolist() if nested else tensor.ravel().tolist()
    return {"inputs": [{"name": "input", "shape": list(tensor.shape), "datatype": "FP32", "data": data}], **extra}


def infer(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def v1_probabilities(client: httpx.Client, image: np.ndarray, size: str) -> np.ndarray:
    params = {"model": size, "detect": "false"}
    response = client.post(
        "/v1/predict", params=params, content=encode(image, ".png"), headers={"content-type": "image/png"}
    )
    body = response.json()
    (face,) = body["faces"]
    return np.array([face["probabilities"][label] for label in body["model"]["labels"]])


def output(body: dict[str, Any], name: str) -> np.ndarray:
    (found,) = [item for item in body["outputs"] if item["name"] == name]
    assert found["datatype"] == "FP32"
    return np.array(found["data"]).reshape(found["shape"])


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("size", SIZES)
def test_softmax_of_the_logits_is_what_v1_predicts(client: httpx.Client, size: str) -> None:
    image = crop()
    expected = v1_probabilities(client, image, size)
    body = infer(client, f"/v2/models/{model_of(size)}/infer", infer_body(tensor_of([image], spec_of(client, size))))
    assert body["model_name"] == model_of(size) and body["model_version"] == "1"
    assert [item["name"] for item in body["outputs"]] == ["logits"]  # the model's own output by default
    logits = output(body, "logits")
    assert logits.shape == (1, len(expected))
    assert softmax(logits)[0] == pytest.approx(expected, abs=1e-6)


def test_a_nested_batch_with_probabilities_matches_v1_per_face(client: httpx.Client) -> None:
    faces = [crop(), np.ascontiguousarray(crop()[:, ::-1])]  # mirrored: a different face for the model
    expected = [v1_probabilities(client, face, "S") for face in faces]
    assert not np.allclose(expected[0], expected[1])
    body = infer_body(
        tensor_of(faces, spec_of(client, "S")),
        nested=True,
        id="batch-7",
        outputs=[{"name": "probabilities"}, {"name": "logits"}],
    )
    answer = infer(client, "/v2/models/microexpnet_s/versions/1/infer", body)
    assert answer["id"] == "batch-7" and answer["model_version"] == "1"
    assert [item["name"] for item in answer["outputs"]] == ["probabilities", "logits"]
    probabilities = output(answer, "probabilities")
    assert probabilities.shape == (2, len(expected[0]))
    for row in range(2):
        assert probabilities[row] == pytest.approx(expected[row], abs=1e-6)
        assert softmax(output(answer, "logits"))[row] == pytest.approx(expected[row], abs=1e-6)


def test_json_without_a_content_type_as_tritonclient_sends_it(client: httpx.Client) -> None:
    tensor = tensor_of([crop()], spec_of(client, "XXS"))
    response = client.post("/v2/models/microexpnet_xxs/infer", content=json.dumps(infer_body(tensor)).encode())
    assert response.status_code == 200, response.text
    assert "id" not in response.json()  # only a request's own id is returned


TENSOR = np.zeros((1, 1, 84, 84), np.float32)


def binary_request(tensor: np.ndarray, datatype: str = "FP32", size: int | None = None) -> tuple[bytes, dict]:
    """A request as tritonclient sends it by default: JSON, then the tensor's bytes; no Content-Type."""
    size = tensor.nbytes if size is None else size
    inputs = [
        {"name": "input", "shape": list(tensor.shape), "datatype": datatype, "parameters": {"binary_data_size": size}}
    ]
    head = json.dumps({"inputs": inputs, "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]})
    return head.encode() + tensor.astype("<f4").tobytes(), {"Inference-Header-Content-Length": str(len(head))}


@pytest.mark.parametrize("media", [None, "application/octet-stream"], ids=["tritonclient", "tritonclient.aio"])
def test_binary_tensor_data_as_tritonclient_sends_it(client: httpx.Client, media: str | None) -> None:
    tensor = tensor_of([crop(), np.ascontiguousarray(crop()[::-1])], spec_of(client, "M"))
    as_json = infer(client, "/v2/models/microexpnet_m/infer", infer_body(tensor))
    body, headers = binary_request(tensor)
    response = client.post(
        "/v2/models/microexpnet_m/infer",
        content=body,
        headers={**headers, **({"content-type": media} if media else {})},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == as_json["outputs"]  # answered in JSON, which tritonclient reads too


def test_tritonclient_calls_this_service_unchanged(client: httpx.Client, server: ServiceProcess) -> None:
    """Triton's own client with its defaults: binary tensors, binary outputs asked for, sync and asyncio."""
    tensor = tensor_of([crop()], spec_of(client, "XS"))
    expected = v1_probabilities(client, crop(), "XS")
    address = server.url.removeprefix("http://")
    triton = tritonclient.InferenceServerClient(address)
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("microexpnet_xs", "1")
    assert triton.get_model_metadata("microexpnet_xs")["inputs"][0]["shape"] == [-1, 1, 84, 84]
    given = tritonclient.InferInput("input", list(tensor.shape), "FP32")
    given.set_data_from_numpy(tensor)
    result = triton.infer("microexpnet_xs", [given], outputs=[tritonclient.InferRequestedOutput("logits")])
    assert softmax(result.as_numpy("logits").astype(np.float64))[0] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(InferenceServerException, match="unknown model"):
        triton.get_model_metadata("microexpnet_xl")
    triton.close()

    async def infer_async() -> np.ndarray:
        async with tritonclient_aio.InferenceServerClient(address) as asynchronous:
            return (await asynchronous.infer("microexpnet_xs", [given])).as_numpy("logits")

    assert np.array_equal(asyncio.run(infer_async()), result.as_numpy("logits"))


BINARY_ERRORS = {
    "JSON length beyond the body": (lambda body, head: (body, {**head, "Inference-Header-Content-Length": "999999"})),
    "JSON length not a number": (lambda body, head: (body, {**head, "Inference-Header-Content-Length": "-5"})),
    "JSON part cut short": (lambda body, head: (body, {**head, "Inference-Header-Content-Length": "10"})),
    "bytes left over": (lambda body, head: (body + b"\0\0\0\0", head)),
    "bytes missing": (lambda body, head: (body[:-4], head)),
}


@pytest.mark.parametrize("case", list(BINARY_ERRORS))
def test_malformed_binary_tensor_data_is_400(client: httpx.Client, case: str) -> None:
    body, headers = BINARY_ERRORS[case](*binary_request(TENSOR))
    response = client.post("/v2/models/microexpnet_m/infer", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"].startswith("binary tensor data: ")


@pytest.mark.parametrize(("datatype", "size"), [("INT32", TENSOR.nbytes), ("FP32", 7), ("FP32", -4)])
def test_binary_data_of_another_type_or_size_is_400(client: httpx.Client, datatype: str, size: int) -> None:
    body, headers = binary_request(TENSOR, datatype, size)
    response = client.post("/v2/models/microexpnet_m/infer", content=body, headers=headers)
    assert response.status_code == 400 and "binary tensor data: input 'input'" in response.json()["error"]


def test_server_metadata_liveness_and_readiness(client: httpx.Client) -> None:
    metadata = client.get("/v2").json()
    assert metadata["name"] == "microexp" and metadata["version"] and metadata["extensions"] == []
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize("size", SIZES)
def test_model_metadata_is_what_triton_reads_from_the_same_store(
    client: httpx.Client, model_store_root: Path, size: str
) -> None:
    name = model_of(size)
    metadata = client.get(f"/v2/models/{name}").json()
    assert metadata == client.get(f"/v2/models/{name}/versions/1").json()
    stored = ModelStore(model_store_root).metadata(name, 1)
    assert metadata["name"] == name and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 84, 84]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, len(stored.labels)]}]
    config = triton.parse((model_store_root / name / "config.pbtxt").read_text())
    assert metadata["platform"] == config.platform
    for described, configured in zip(
        metadata["inputs"] + metadata["outputs"], config.inputs + config.outputs, strict=True
    ):
        # Triton's config leaves the batch out of `dims` (max_batch_size > 0); the protocol reports it as -1.
        assert described["name"] == configured.name
        assert f"TYPE_{described['datatype']}" == configured.data_type
        assert described["shape"] == [-1, *configured.dims]
    for path in (f"/v2/models/{name}/ready", f"/v2/models/{name}/versions/1/ready"):
        assert client.get(path).json() == {"name": name, "ready": True}


VALID = infer_body(TENSOR)


def with_input(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{**VALID["inputs"][0], **changes}]}


ERRORS = {
    "unknown model": ("GET", "/v2/models/microexpnet_xl", None, 404, "unknown model 'microexpnet_xl'"),
    "unknown model ready": ("GET", "/v2/models/nope/ready", None, 404, "unknown model"),
    "unknown version": ("GET", "/v2/models/microexpnet_m/versions/7", None, 404, "has no version 7"),
    "version not a number": ("GET", "/v2/models/microexpnet_m/versions/v1/ready", None, 404, "not a version number"),
    "infer unknown model": ("POST", "/v2/models/nope/infer", VALID, 404, "unknown model"),
    "infer unknown version": ("POST", "/v2/models/microexpnet_m/versions/2/infer", VALID, 404, "has no version 2"),
    "input name": ("POST", None, with_input(name="image"), 400, "takes one input, 'input'"),
    "two inputs": ("POST", None, {"inputs": VALID["inputs"] * 2}, 400, "takes one input"),
    "no inputs": ("POST", None, {"inputs": []}, 400, "takes one input"),
    "datatype": ("POST", None, with_input(datatype="INT32"), 400, "is FP32, not INT32"),
    "shape rank": ("POST", None, with_input(shape=[1, 84, 84]), 400, "must have shape [N, 1, 84, 84]"),
    "empty batch": ("POST", None, with_input(shape=[0, 1, 84, 84], data=[]), 400, "N from 1 to 64"),
    "batch over 64": ("POST", None, with_input(shape=[65, 1, 84, 84]), 400, "N from 1 to 64"),
    "too few values": ("POST", None, with_input(data=[0.0] * 100), 400, "data has 100 values"),
    "strings": ("POST", None, with_input(data=["0"] * 7056), 400, "data[0] is a string"),
    "booleans": ("POST", None, with_input(data=[True] * 7056), 400, "data[0] is a boolean"),
    "ragged": ("POST", None, with_input(data=[[[[0.0] * 84] * 83]]), 400, "nested data does not match"),
    "binary size, no binary": (
        "POST",
        None,
        with_input(parameters={"binary_data_size": 28224}),
        400,
        "no Inference-Header-Content-Length",
    ),
    "unknown output": ("POST", None, {**VALID, "outputs": [{"name": "scores"}]}, 400, "'probabilities'"),
    "repeated output": ("POST", None, {**VALID, "outputs": [{"name": "logits"}] * 2}, 400, "distinct"),
    "shape as text": ("POST", None, with_input(shape=["1", 1, 84, 84]), 400, "invalid request: body.inputs.0.shape"),
    "no inputs field": ("POST", None, {"outputs": []}, 400, "invalid request: body.inputs"),
    "GET infer": ("GET", "/v2/models/microexpnet_m/infer", None, 405, "Method Not Allowed"),
    "unknown route": ("GET", "/v2/models", None, 404, "Not Found"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_have_the_protocols_shape_and_status(client: httpx.Client, case: str) -> None:
    method, path, body, status, fragment = ERRORS[case]
    response = client.request(method, path or "/v2/models/microexpnet_m/infer", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert set(error) == {"error"} and isinstance(error["error"], str)
    assert fragment in error["error"]


MALFORMED = {
    "truncated JSON": (b'{"inputs": [', "invalid request"),
    # Python's JSON parser, which FastAPI uses, accepts NaN; the values are checked, not only their count.
    "NaN": (json.dumps(with_input(data=[math.nan] * 7056)).encode(), "NaN"),
    "not UTF-8": (b"\xff\xfe\x00not text", "error parsing the body"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_is_400(client: httpx.Client, case: str) -> None:
    raw, fragment = MALFORMED[case]
    response = client.post("/v2/models/microexpnet_m/infer", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and fragment in response.json()["error"]


def test_not_ready_without_models(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(store=tmp_path, reload_interval=0))) as local:
        assert local.get("/v2/health/live").json() == {"live": True}
        response = local.get("/v2/health/ready")
        assert response.status_code == 503 and "not loaded" in response.json()["error"]
        assert local.get("/v2/models/microexpnet_m").json() == {"error": "unknown model 'microexpnet_m'; models: none"}


def test_a_model_whose_only_version_is_refused_is_not_ready(store_copy: ModelStore) -> None:
    onnx = store_copy.root / "microexpnet_xxs" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")  # the sha256 no longer matches: the version is refused
    with TestClient(create_app(Settings(store=store_copy.root, reload_interval=0))) as local:
        response = local.get("/v2/models/microexpnet_xxs/ready")
        assert response.status_code == 503
        assert "no loadable version" in response.json()["error"] and "sha256" in response.json()["error"]
        assert local.get("/v2/models/microexpnet_xs/ready").json() == {"name": "microexpnet_xs", "ready": True}
        assert local.get("/v2/health/ready").json() == {"ready": True}  # the default size M is served
