"""Portable against native llama-cpp-python wheel: prefill and decode tokens/s on the embedded
model, in one run. Goal (issue 24): portable decode >= 0.95x native.

Each wheel is installed into its own scratch venv (the wheel alone, --no-deps; its pure-Python
dependencies come from this venv through a .pth placed after the scratch venv's own
site-packages), so each worker imports exactly one build. Both workers load the model once, then
answer rounds in alternating order (A B, B A, ...): a ~500-token prefill, then 128 greedy
single-token decodes, timed inside the worker. The ratio is the median of the per-round ratios.

The portable wheel is `hearth bundle`'s (server/bundle/llama_wheel.py: built once, tens of
minutes, then cached); the native one is the Makefile's. Figures taken while other work used the
cores are marked UNRELIABLE (bench/common.py) and the script exits with status 3.

    .venv/bin/python -m bench.portable_wheel                 # 5 rounds, about 2 minutes
    .venv/bin/python -m bench.portable_wheel --rounds 1      # quick check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench.common import PROMPTS, _die_with_parent, add_load_args, guard_from_args, median, print_table, ratio
from server.bundle import llama_wheel
from server.settings import EMBEDDED_MODEL, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent("""
    import json, sys, time
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    def next_token(llm):  # greedy, from the last position's logits (Llama.scores holds them only with logits_all)
        return int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).argmax())

    model, n_prompt, n_decode, threads, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    llm = Llama(model_path=model, n_ctx=n_prompt + n_decode + 8, n_batch=512, n_ubatch=512, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    prompt = llm.tokenize(text.encode())
    while len(prompt) < n_prompt:
        prompt += prompt
    prompt = prompt[:n_prompt]
    maps = open("/proc/self/maps").read()
    variant = sorted({l.rsplit("/", 1)[1] for l in maps.splitlines() if "libggml-cpu" in l})
    print(json.dumps({"module": llama_cpp.__file__, "cpu_backend": variant}), flush=True)

    def one_round():
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        tok = next_token(llm)
        for _ in range(n_decode):
            llm.eval([tok])
            tok = next_token(llm)
        t2 = time.perf_counter()
        return {"prefill": n_prompt / (t1 - t0), "decode": n_decode / (t2 - t1)}

    one_round()  # warm-up: page in the weights, size the buffers
    for line in sys.stdin:
        print(json.dumps(one_round()), flush=True)
""")


def scratch_venv(wheel: Path, where: Path) -> Path:
    """A venv holding `wheel` only, seeing this venv's packages after its own."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    [site] = (where / "lib").glob("python*/site-packages")
    (site / "hearth-deps.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    return python


class Worker:
    def __init__(self, name: str, python: Path, args: argparse.Namespace, model: Path, text: str):
        self.name = name
        self.proc = subprocess.Popen(
            [str(python), "-c", WORKER, str(model), str(args.prompt_tokens), str(args.decode_tokens),
             str(args.threads), text], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
            preexec_fn=_die_with_parent)
        self.info = self.read()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def round(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portable", type=Path, default=None, help="portable wheel (default: hearth bundle's cache)")
    parser.add_argument("--native", type=Path, default=None, help="native wheel (default: the Makefile's cache)")
    parser.add_argument("--model", default=EMBEDDED_MODEL, help="GGUF, or the embedded model (served Q8_0)")
    parser.add_argument("--prompt-tokens", type=int, default=500)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    add_load_args(parser)
    args = parser.parse_args(argv)
    guard = guard_from_args(args)
    version = llama_wheel.pinned_version(ROOT)
    wheels = {
        "portable": args.portable or llama_wheel.portable_wheel(version, lambda m: print(m, file=sys.stderr)).path,
        "native": args.native or llama_wheel.one_wheel(llama_wheel.native_dir(version), version),
    }
    if wheels["native"] is None:
        sys.exit(f"no native wheel in {llama_wheel.native_dir(version)}: run `make install`")
    model = resolve_model_path(args.model).resolve()  # the workers run in /, not here
    text = " ".join(PROMPTS * 4)
    results: dict[str, list[dict]] = {name: [] for name in wheels}
    tags: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hearth-bench-wheels-") as tmp:
        workers = {name: Worker(name, scratch_venv(wheel, Path(tmp) / name), args, model, text)
                   for name, wheel in wheels.items()}
        for name, w in workers.items():
            print(f"{name}: {wheels[name].name} from {wheels[name].parent}\n  {w.info['module']}, CPU backend "
                  f"{w.info['cpu_backend'] or ['built into libggml-cpu.so']}")
            assert w.info["module"].startswith(tmp), f"{name} imported the wrong llama_cpp: {w.info['module']}"
        try:
            for i in range(args.rounds):
                order = list(workers) if i % 2 == 0 else list(workers)[::-1]
                with guard.measure(f"round {i + 1}") as rec:
                    for name in order:
                        results[name].append(workers[name].round())
                tags.append(rec.tag())
                print(f"round {i + 1}: " + ", ".join(f"{n} prefill {results[n][-1]['prefill']:.1f} decode "
                                                   f"{results[n][-1]['decode']:.1f} tok/s" for n in workers)
                      + f" ({rec.tag()})", flush=True)
        finally:
            for w in workers.values():
                w.close()
    rows = []
    for name in wheels:
        rows.append([name, f"{median([r['prefill'] for r in results[name]]):.1f}",
                     f"{median([r['decode'] for r in results[name]]):.1f}"])
    paired = {k: median([ratio(p[k], n[k]) for p, n in zip(results["portable"], results["native"])])
              for k in ("prefill", "decode")}
    rows.append(["portable / native", f"{paired['prefill']:.3f}x", f"{paired['decode']:.3f}x"])
    print_table(["wheel", f"prefill tok/s ({args.prompt_tokens} tokens)", f"decode tok/s ({args.decode_tokens} tokens)"],
                rows, title=f"{model.name}, {args.threads} threads, median of {args.rounds} rounds")
    print("per round: " + "; ".join(
        f"{p['decode'] / n['decode']:.3f}x decode ({tag})" for p, n, tag in zip(results["portable"], results["native"], tags)))
    goal = paired["decode"] >= 0.95
    print(f"goal (portable decode >= 0.95x native): {'met' if goal else 'NOT met'} ({paired['decode']:.3f}x)")
    unreliable = guard.summary_exit()
    return unreliable or (0 if goal else 1)


if __name__ == "__main__":
    sys.exit(main())
