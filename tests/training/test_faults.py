"""A full disk while a training checkpoint is written (issue 26, item 3): no partial checkpoint
where --resume would take it, the checkpoints before it intact, and an error naming it and what
filled.

The disk is filled by a file-size limit (RLIMIT_FSIZE, `ulimit -f`) on a subprocess: torch.save
and safetensors then fail their writes with EFBIG, as on a full disk with ENOSPC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

_SCRIPT = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    import torch
    from training.train import checkpoints, save_checkpoint

    run = Path(sys.argv[1])
    torch.manual_seed(0)
    model = torch.nn.Linear(256, 256)  # 257 KB of weights, 514 KB of Adam state
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 256)).sum().backward()
    optimizer.step()
    save_checkpoint(run, model, optimizer, {"step": 1}, keep=3)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
    try:
        save_checkpoint(run, model, optimizer, {"step": 2}, keep=3)
        out = {"error": None}
    except Exception as exc:
        out = {"error": type(exc).__name__, "message": str(exc)}
    out["complete"] = [p.name for p in checkpoints(run)]
    print(json.dumps(out))
""")


def test_a_full_disk_during_a_checkpoint_leaves_the_last_good_one(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(run)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["error"] == "DiskFull", out
    assert str(run / "checkpoints" / "step-000002") in out["message"] and "file-size limit" in out["message"]
    assert out["complete"] == ["step-000001"]  # --resume takes the last whole checkpoint
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001"]  # no temporary folder left
    state = json.loads((run / "checkpoints" / "step-000001" / "state.json").read_text())
    assert state == {"step": 1}
