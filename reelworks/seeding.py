"""Reproducible runs: the environment that makes a seeded training land on the same figures.

Training code seeds itself (`keras.utils.set_random_seed(config.seed)` in
`reelworks.imageclf.training`, `torch.manual_seed(config.seed)` in `reelworks.plots.train`).
What still varies between two runs of the same seed is the kernels: TensorFlow's parallel
reductions and `tf.data`'s parallel map/interleave (training datasets are built with
`deterministic=False` for speed) depend on thread timing, and a sum split over 2 threads adds in
another order than over 8. `TF_DETERMINISTIC_OPS=1` is `tf.config.experimental.enable_op_determinism()`
(it covers tf.data too), read when TensorFlow starts; fixed thread pools make the order the same
on every machine with the same CPU.

The tests put `DETERMINISTIC_ENV` into the environment before anything imports TensorFlow
(`tests/conftest.py`), so subprocesses get it too; `bench/seed_spread.py` does the same, so
the figures it measures are the ones the tests see. Production runs leave it off: it is slower.
"""
from __future__ import annotations

import os

DETERMINISTIC_ENV = {
    "TF_DETERMINISTIC_OPS": "1",
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_NUM_INTEROP_THREADS": "2",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # torch on CUDA needs it for deterministic matmuls
}


def set_deterministic_env(environ=None) -> None:
    """Put `DETERMINISTIC_ENV` into `environ` (default `os.environ`) where not already set.

    Call it before TensorFlow is imported: the runtime reads these once, when it starts."""
    environ = os.environ if environ is None else environ
    for key, value in DETERMINISTIC_ENV.items():
        environ.setdefault(key, value)
