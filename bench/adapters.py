"""Several LoRA adapters on one base against separate merged models: resident memory and output.

    python -m bench.adapters [--n-ctx 1024] [--n-slots 2] [--work var/bench/adapters]

Builds two LoRA adapters for the embedded SmolLM2-135M-Instruct (`steering_adapter`: peft adapters
whose weights are constructed, not trained, so that each makes greedy decoding emit its own word,
"SELECT" or "Arr"), exports each with `hearth export --lora`'s code, and merges each into the base
(hearth merge, hearth export, Q8_0 as the served embedded model). Then, each in a fresh process
loaded by the server's own loader (server/app.py load_pool), one greedy answer per model to touch
every weight, and the process's memory read from /proc:

    base                  the embedded Q8_0 model alone
    base + 2 adapters     one llama_model, three contexts (base, sql, pirate)
    2 merged              the two merged Q8_0 models in one process
    base + 2 merged       the same three names served from three models
    1 merged              one merged model (x2: two separate processes)

RSS counts every resident page mapped, PSS divides shared file pages between the processes
that map them (the figure to add up across processes). Every context here has the same n_ctx and
n_slots, so the contexts' KV caches are alike on both sides; the difference is the weights.

Measured here (2 shared cores, HEARTH_DATA_DIR holding the dequantized base; MiB after one answer
per model; the python process with the server's imports is 99 MiB before loading):

                         n_ctx 1024 x 2 slots      n_ctx 256 x 1 slot
    configuration           RSS      PSS              RSS      PSS
    base                    305      276              266      237
    base + 2 adapters       411      382              293      265
    2 merged                507      477              428      399
    base + 2 merged         709      679              590      561
    2 merged, 2 processes   611      553              531      473

An adapter costs its context (53 or 14 MiB), a merged model its 138 MiB of weights besides; the
same three names take 297 MiB less on one base. The merged models answer as the adapters do.

Why constructed adapters: training SmolLM2-135M for a reply takes ~40 s a step on this shared 2-core
box. A steering adapter is a real rank-8 peft LoRA on the last layer's MLP (gate, up, down), built
so that, whatever the input, it adds a large vector of one direction to the residual stream: gate
and up get the same rank-8 update on paired units (+t on one unit, -t on its twin, t = P·x for a
random projection P), so the pair's activation silu(g)·u is about t² whatever the sign of t, and
down maps those units onto a direction v chosen so that the final norm and the (tied) output
embedding put the target token first. Greedy output is then that token, repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEER_RANK = 8          # paired intermediate units: 2 x rank of the 1536
STEER_GAIN = 40.0       # s in gate/up: the pair's activation is about s² t²
STEER_NORM = 40.0       # |v|: the down projection's direction, scaled well above the MLP's own columns


def base_config_dir(gguf: str | Path, out: str | Path) -> Path:
    """A folder with the GGUF's model config as config.json: what llama.cpp's LoRA converter reads of the base.

    transformers reads the config from the GGUF's metadata alone (no weights are dequantized)."""
    from transformers import AutoConfig

    gguf, out = Path(gguf), Path(out)
    if not (out / "config.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config.architectures = config.architectures or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
        config.save_pretrained(out)
    return out


def gguf_tensor(gguf: str | Path, name: str):
    """One tensor of a GGUF, dequantized to float32 (numpy), in the HF orientation (rows = outputs)."""
    import numpy as np
    from gguf import GGUFReader, dequantize

    t = next(t for t in GGUFReader(str(gguf)).tensors if t.name == name)
    return np.array(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(
        [int(n) for n in reversed(t.shape)])


def steering_direction(gguf: str | Path, token: int, steps: int = 60):
    """v (576,) such that the output embedding over the final RMSNorm of v ranks `token` first, by a margin."""
    import torch

    emb = torch.from_numpy(gguf_tensor(gguf, "token_embd.weight"))      # tied: the output matrix too
    gamma = torch.from_numpy(gguf_tensor(gguf, "output_norm.weight"))
    v = (gamma * emb[token]).requires_grad_(True)   # logit_i = E_i · (gamma * n): start from gamma * E_token
    opt = torch.optim.Adam([v], lr=0.2)
    for _ in range(steps):
        n = v / v.pow(2).mean().sqrt()
        loss = -torch.log_softmax(emb @ (gamma * n), -1)[token]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = emb @ (gamma * v / v.pow(2).mean().sqrt())
        if int(logits.argmax()) != token:
            raise RuntimeError(f"no steering direction found for token {token}")
        return (v / v.norm()).detach()


def steering_adapter(out: str | Path, token: int, *, gguf: str | Path, config_dir: str | Path, seed: int = 0) -> Path:
    """A peft LoRA adapter folder for the model in `gguf` (config in `config_dir`) that makes greedy
    decoding emit `token` (see the module's docstring)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    out = Path(out)
    config = AutoConfig.from_pretrained(str(config_dir))
    last = config.num_hidden_layers - 1
    d, m, r = config.hidden_size, config.intermediate_size, STEER_RANK
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model = model.to_empty(device="cpu")  # uninitialised base weights: only the adapter is saved
    lora = LoraConfig(r=r, lora_alpha=r, target_modules=["gate_proj", "up_proj", "down_proj"],
                      layers_to_transform=[last], task_type="CAUSAL_LM", bias="none")
    model = get_peft_model(model, lora)
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(r, d, generator=gen)
    proj /= proj.norm(dim=1, keepdim=True)           # t_k = P_k · x, for the MLP's normed input x
    pairs = torch.zeros(m, r)
    for k in range(r):
        pairs[2 * k, k], pairs[2 * k + 1, k] = STEER_GAIN, -STEER_GAIN   # unit 2k gets +s·t_k, its twin -s·t_k
    down_a = torch.zeros(r, m)
    down_a[0, : 2 * r] = 1.0                           # sums the pairs' activations, about s² |P x|²
    down_b = torch.zeros(d, r)
    down_b[:, 0] = STEER_NORM * steering_direction(gguf, token)
    mlp = model.get_base_model().model.layers[last].mlp
    with torch.no_grad():
        for name, (a, b) in {"gate_proj": (proj, pairs), "up_proj": (proj, pairs), "down_proj": (down_a, down_b)}.items():
            layer = getattr(mlp, name)
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
    model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(Path(config_dir).resolve())
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return out


# -- the benchmark ---------------------------------------------------------------------------------

ADAPTERS = {"sql": 23428, "pirate": 40909}  # SmolLM2 token ids of "SELECT" and "Arr"
QUESTION = "Name three office supplies."


def build(work: Path) -> dict:
    """The two adapters as GGUF LoRA files and as merged Q8_0 models (kept in `work` between runs)."""
    from quantize.export import export_gguf
    from quantize.lora import export_lora
    from quantize.merge import merge
    from quantize.quant import quantize
    from server.settings import embedded_model_path

    wheel = embedded_model_path()
    config = base_config_dir(wheel, work / "smol-config")
    files = {}
    for name, token in ADAPTERS.items():
        peft_dir, lora = work / name, work / f"{name}-lora-F16.gguf"
        merged, f16, q8 = work / f"{name}-merged", work / f"{name}-merged-F16.gguf", work / f"{name}-merged-Q8_0.gguf"
        if not (peft_dir / "adapter_config.json").exists():
            steering_adapter(peft_dir, token, gguf=wheel, config_dir=config)
        if not lora.exists():
            export_lora(peft_dir, lora)
        if not q8.exists():
            if not (merged / "config.json").exists():
                # the steering units reach ~1e4, so float32 rounding moves logits by more than merge's 1e-3
                merge(peft_dir, "embedded:smollm2", merged, atol=0.05)
            if not f16.exists():
                export_gguf(merged, f16)
            quantize(f16, q8, "Q8_0")
        files[name] = {"lora": str(lora), "merged": str(q8), "lora_bytes": lora.stat().st_size,
                       "merged_bytes": q8.stat().st_size}
    return files


def _memory() -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    rollup = Path("/proc/self/smaps_rollup").read_text().splitlines()
    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
            "pss_mb": pss / 1024}


def measure(spec: dict) -> dict:
    """In this process: load `spec`'s models and adapters with the server's loader, one greedy answer each."""
    import asyncio

    from server.app import load_pool
    from server.engine.base import GenerationRequest, SamplingParams, TokenEvent
    from server.settings import ServerSettings

    before = _memory()
    context = {"n_ctx": spec["n_ctx"], "n_slots": spec["n_slots"], "n_threads": 2}
    settings = ServerSettings(databases=[], models=[m | context for m in spec["models"]],
                              adapters=[a | {"n_ctx": spec["n_ctx"], "n_slots": spec["n_slots"]}
                                        for a in spec.get("adapters", [])])
    t0 = time.perf_counter()
    pool = load_pool(settings)
    load_s = time.perf_counter() - t0
    loaded = _memory()

    async def answer(engine):
        prompt = engine.tokenize(engine.render_chat([{"role": "user", "content": QUESTION}]))
        request = GenerationRequest(tuple(prompt), SamplingParams(max_tokens=4, temperature=0))
        return "".join([e.text async for e in engine.generate(request) if isinstance(e, TokenEvent)])

    answers = {name: asyncio.run(answer(engine)) for name, engine in pool.items()}
    after = _memory()
    pool.close()
    return {"before": before, "loaded": loaded, "after": after, "load_s": round(load_s, 2), "answers": answers}


def run_measure(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.adapters", "--measure", json.dumps(spec)], cwd=ROOT,
                          capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {spec['label']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "var" / "bench" / "adapters"), help="Where adapters and merged "
                        "models are built (kept between runs).")
    parser.add_argument("--n-ctx", type=int, default=1024, help="Context per sequence, every context alike.")
    parser.add_argument("--n-slots", type=int, default=2, help="Sequences per context (KV cache: n_ctx x n_slots).")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one configuration, in a child
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HEARTH_DATA_DIR", str(work / "data"))
    t0 = time.perf_counter()
    files = build(work)
    print(f"built in {time.perf_counter() - t0:.0f} s: " + ", ".join(
        f"{n}: LoRA {f['lora_bytes'] / 2**20:.2f} MiB, merged Q8_0 {f['merged_bytes'] / 2**20:.1f} MiB"
        for n, f in files.items()), flush=True)
    base = {"name": "smol", "path": "embedded:smollm2"}
    adapters = [{"name": n, "base": "smol", "path": f["lora"]} for n, f in files.items()]
    merged = [{"name": f"{n}-merged", "path": f["merged"]} for n, f in files.items()]
    specs = [("base", [base], []), ("base + 2 adapters", [base], adapters), ("2 merged", merged, []),
             ("base + 2 merged", [base, *merged], []), ("1 merged", merged[:1], [])]
    rows = {}
    for label, models, adapter_list in specs:
        spec = {"label": label, "models": models, "adapters": adapter_list, "n_ctx": args.n_ctx,
                "n_slots": args.n_slots}
        rows[label] = run_measure(spec)
        print(f"{label}: {json.dumps(rows[label])}", flush=True)
    print(f"\nn_ctx {args.n_ctx} x n_slots {args.n_slots} per context, 2 threads; MiB after one greedy answer per "
          "model (python and the server's imports before loading: "
          f"RSS {rows['base']['before']['rss_mb']:.0f})")
    print(f"{'configuration':<22}{'contexts':>9}{'models':>7}{'RSS':>8}{'PSS':>8}{'RSS-imports':>13}  answers")
    for (label, models, adapter_list), row in zip(specs, rows.values()):
        a = row["after"]
        print(f"{label:<22}{len(models) + len(adapter_list):>9}{len(models):>7}{a['rss_mb']:>8.0f}{a['pss_mb']:>8.0f}"
              f"{a['rss_mb'] - row['before']['rss_mb']:>13.0f}  {row['answers']}")
    one = rows["1 merged"]["after"]
    print(f"{'2 merged, 2 processes':<22}{2:>9}{2:>7}{2 * one['rss_mb']:>8.0f}{2 * one['pss_mb']:>8.0f}"
          f"{2 * (one['rss_mb'] - rows['1 merged']['before']['rss_mb']):>13.0f}  (twice '1 merged')")
    shared = rows["base + 2 adapters"]["after"]["rss_mb"]
    separate = rows["base + 2 merged"]["after"]["rss_mb"]
    print(f"\nthe same three model names: {shared:.0f} MiB on one base with 2 adapters, {separate:.0f} MiB as three "
          f"models ({separate - shared:.0f} MiB saved, {shared / separate:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
