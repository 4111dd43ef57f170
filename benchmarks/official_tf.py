"""The paper authors' TensorFlow formulation of MicroExpNet (XXS) with their released CK+ weights.

The forward pass is theirs (``MicroExpNet.py``: NHWC, raw 0-255 pixels, SAME padding, NHWC flatten), written
with ``tf.nn`` ops in a ``tf.function`` (a graph, as their TF1 ``session.run`` executed it). It is checked
against the logits the original TF1 graph produced (``parity_ck.npz``) before it is timed.

Run in its own process (``python -m benchmarks.official_tf --threads N``) because TensorFlow fixes its thread
pools when it starts; prints one JSON object. Needs the optional ``bench`` extra (tensorflow-cpu).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from benchmarks.model_speed import BATCHES, timed_block

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "reference" / "microexpnet_official"
PARITY_TOLERANCE = 1e-3  # the logits are about 20 in size; float32 on another library


def forward(tf, weights: dict[str, np.ndarray]):
    w = {key: tf.constant(value) for key, value in weights.items()}

    @tf.function(input_signature=[tf.TensorSpec([None, 84, 84, 1], tf.float32)])
    def logits(x):
        h = tf.nn.relu(tf.nn.conv2d(x, w["wc1"], strides=2, padding="SAME") + w["bc1"])
        h = tf.nn.max_pool2d(h, 2, 2, padding="SAME")
        h = tf.nn.relu(tf.nn.conv2d(h, w["wc2"], strides=2, padding="SAME") + w["bc2"])
        h = tf.nn.max_pool2d(h, 2, 2, padding="SAME")
        h = tf.reshape(h, [-1, w["wfc"].shape[0]])
        h = tf.nn.relu(tf.matmul(h, w["wfc"]) + w["bfc"])
        return tf.matmul(h, w["wo"]) + w["bo"]

    return logits


def measure(threads: int, seconds: float, rounds: int) -> dict[str, object]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    weights = dict(np.load(OFFICIAL / "ck.npz"))
    logits = forward(tf, weights)
    parity = np.load(OFFICIAL / "parity_ck.npz")
    inputs = parity["inputs"].astype(np.float32)[..., None]
    difference = float(np.abs(logits(tf.constant(inputs)).numpy() - parity["logits"]).max())
    if difference > PARITY_TOLERANCE:
        raise SystemExit(f"the TensorFlow formulation differs from the authors' logits by {difference}")
    rng = np.random.default_rng(0)
    throughput: dict[str, float] = {}
    latencies: list[float] = []
    for batch_size in BATCHES:
        batch = tf.constant(rng.random((batch_size, 84, 84, 1), dtype=np.float32) * 255)

        def call(batch=batch):
            return logits(batch).numpy()  # .numpy(): wait for the result, as session.run returns it

        for _ in range(3):
            call()
        rates = []
        for _ in range(rounds):
            times = timed_block(call, seconds / rounds)
            rates.append(batch_size * len(times) / sum(times))
            if batch_size == 1:
                latencies.extend(times)
        throughput[str(batch_size)] = float(np.median(rates))
    return {
        "engine": "tensorflow (authors' formulation, tf.function)",
        "tensorflow": tf.__version__,
        "threads": threads,
        "parity_max_abs_diff": difference,
        "parameters": int(sum(value.size for value in weights.values())),
        "throughput": throughput,
        "latency_ms": {
            "median": float(np.median(latencies)) * 1e3,
            "p99": float(np.percentile(latencies, 99)) * 1e3,
            "samples": len(latencies),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per batch size")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.threads, args.seconds, args.rounds)))


if __name__ == "__main__":
    main()
