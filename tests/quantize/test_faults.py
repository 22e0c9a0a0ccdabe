"""A full disk during export and quantize (issue 26, item 3): no partial file where a reader would
take it, and an error that names the output and what filled.

The disk is filled by a file-size limit (RLIMIT_FSIZE, `ulimit -f`) on a subprocess, which works
without root and fails writes with EFBIG as a full disk fails them with ENOSPC; llama.cpp's
converter runs as a child of it and inherits the limit. The model is the tests' tiny Llama.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

LIMIT = 2 << 20  # the tiny model's F16 GGUF is ~8 MB and its Q8_0 ~5 MB: both are cut mid-way

_LIMITED = textwrap.dedent("""
    import json, resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored across exec too: writes fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    try:
        {call}
        print(json.dumps({{"error": None}}))
    except Exception as exc:
        print(json.dumps({{"error": type(exc).__name__, "message": str(exc),
                          "oserror": isinstance(exc, OSError)}}))
""")


def run_limited(call: str, limit: int = LIMIT) -> dict:
    """Runs `call` (one line of Python) in a subprocess whose files may not grow past `limit` bytes."""
    script = _LIMITED.format(limit=limit, call=call)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_nothing_partial(folder: Path, out: Path, result: dict) -> None:
    assert result["error"] == "DiskFull" and result["oserror"], result
    assert str(out) in result["message"] and "file-size limit" in result["message"], result["message"]
    assert not out.exists()
    assert [p.name for p in folder.iterdir()] == [], "a temporary file was left behind"


@pytest.fixture(scope="module")
def f16(tiny_model, tmp_path_factory) -> Path:
    from quantize.export import export_gguf

    out = tmp_path_factory.mktemp("f16") / "tiny-F16.gguf"
    export_gguf(tiny_model, out, check=False)
    return out


def test_a_full_disk_during_export_leaves_no_gguf(tiny_model, tmp_path):
    out = tmp_path / "out" / "tiny-F16.gguf"
    out.parent.mkdir()
    result = run_limited(f"from quantize.export import export_gguf; export_gguf({str(tiny_model)!r}, {str(out)!r}, check=False)")
    assert_nothing_partial(out.parent, out, result)


def test_a_full_disk_during_quantize_leaves_no_gguf(f16, tmp_path):
    from quantize.quant import quantize

    out = tmp_path / "out" / "tiny-Q8_0.gguf"
    out.parent.mkdir()
    result = run_limited(f"from quantize.quant import quantize; quantize({str(f16)!r}, {str(out)!r}, 'Q8_0', threads=1)")
    assert_nothing_partial(out.parent, out, result)
    # With room again, the same call writes a whole, loadable file.
    from server.engine.gguf_file import check_gguf

    quantize(f16, out, "Q8_0", threads=1)
    check_gguf(out)
