"""training/sizing.py's rule against measured runs of the tiny and 135M models on this machine.

    .venv/bin/python -m bench.sizing            # time and activation memory: measured vs the rule
    .venv/bin/python -m bench.sizing --fit      # refit ACTIVATION_RULE from FIT_SHAPES, print it

Time: training steps of random-weight LoRA models (a tiny llama and SmolLM2-135M's shape, one
packed micro-batch of rows × seq tokens, AdamW) against FLOPs / calibrated rate + per-pass overhead
(training/calibrate.py measured at the same model's layer). Memory: the bytes autograd keeps for
backward (counted exactly, training/sizing.py saved_bytes) against the fitted activation rule.
The load check of bench.common marks figures taken while other work used the cores UNRELIABLE.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import add_load_args, guard_from_args, print_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the activation rule and print it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (after one warm-up)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by CPU seconds / threads instead of wall seconds (a shared machine)")
    add_load_args(parser)
    args = parser.parse_args(argv)

    from training import sizing
    from training.calibrate import measure
    from training.flops import model_shape
    from training.plan import SMOLLM2_135M

    if args.fit:
        for mode in ("fp32", "bf16"):
            (a, b), points = sizing.measure_fit(mode)
            print(f"{mode}: a={a:.2f} B/hidden unit, b={b:.2f} B/ff unit per token per layer")
            for h, f, y in points:
                print(f"  hidden {h:4d} ff {f:4d}: measured {y:8.1f} B/token/layer, fit {a * h + b * f:8.1f}")
        return 0

    guard = guard_from_args(args)
    # CPU seconds per thread: with the threads busy throughout, what an idle machine's wall clock shows.
    clock = (lambda: time.process_time() / args.threads) if args.cpu_time else time.perf_counter
    models = {"tiny (h128 ff512, 4 layers)": (sizing.tiny_config(128, 512, layers=4, vocab=49152), 4, 128),
              "SmolLM2-135M": (SMOLLM2_135M, 4, 256)}
    rows = []
    for name, (config, n_rows, seq) in models.items():
        with guard.measure(name) as rec:
            cal = measure(config, args.threads, clock=clock)
            times = sizing.time_steps(config, rows=n_rows, seq=seq, steps=args.steps, threads=args.threads,
                                      clock=clock)
        measured = statistics.median(times)
        predicted = sizing.predicted_step_seconds(config, cal, rows=n_rows, seq=seq)
        layers = config | {"num_hidden_layers": 2, "vocab_size": 256}  # bytes per layer do not depend on depth
        saved = sizing.decoder_saved_bytes(layers, "fp32", rows=n_rows, seq=seq)
        rule = sizing.activation_bytes(model_shape(layers), n_rows * seq, "fp32", seq=seq)
        rows.append([name, n_rows * seq, f"{cal.gflops:.1f}", f"{measured:.3f}", f"{predicted:.3f}",
                     f"{measured / predicted:.2f}", f"{saved / 2**20:.2f}", f"{rule / 2**20:.2f}",
                     f"{saved / rule:.3f}", rec.tag()])
    print_table(["model", "tokens", "GFLOP/s", "step s", "rule s", "measured/rule", "act MB (2 layers)",
                 "rule MB", "measured/rule", "load"], rows,
                title=f"{args.threads} thread(s), median of {args.steps} steps after a warm-up, "
                      f"{'CPU seconds / threads' if args.cpu_time else 'wall seconds'}")
    return guard.summary_exit()

if __name__ == "__main__":
    sys.exit(main())
