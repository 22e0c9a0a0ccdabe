"""The embedded SmolLM2-135M as a plain HF folder and as an f16 GGUF of the same weights.

Built once per session (dequantizing the Q4_1 GGUF ~30 s, exporting ~10 s), the way
tests/quantize/test_real_model.py builds them: the two scorers must agree on these two files.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smol_hf_dir(data_dir) -> Path:
    from training.model import materialize_base

    return materialize_base("embedded:smollm2")  # cached under data_dir/cache for the session


@pytest.fixture(scope="session")
def smol_f16_gguf(smol_hf_dir, tmp_path_factory) -> Path:
    from quantize.export import export_gguf

    out = tmp_path_factory.mktemp("smol-f16") / "smol-F16.gguf"
    export_gguf(smol_hf_dir, out)
    return out
