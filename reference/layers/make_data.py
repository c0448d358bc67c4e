"""Write data/train.npz, the training set of q3, from reference.training_set (fixed seed).

    python reference/layers/make_data.py

The grader generates the same arrays from the same function at grading time, so the file students
download and the file their notebook finds in its working directory are identical.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    spec = importlib.util.spec_from_file_location("layers_reference", HERE / "reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arrays = module.training_set()
    (HERE / "data").mkdir(exist_ok=True)
    np.savez_compressed(HERE / "data" / "train.npz", **arrays)
    features, targets = arrays["X"], arrays["y"]
    print(f"wrote data/train.npz: X {features.shape}, y {targets.shape} (variance {targets.var():.3f})")


if __name__ == "__main__":
    main()
