"""Probes of llama.cpp behaviour that the scheduler's rules rest on (raw low-level API, no HTTP).
Rerun them after upgrading llama-cpp-python or on new hardware:

  threads   single-stream greedy tok/s on a new thread, then on the main thread, then on a new
            thread again: with llama.cpp's OpenMP build every decoding thread keeps its own
            team, and once two teams outnumber the cores libgomp throttles its spin-waits (on
            a 2-core Xeon VM: 48-51 tok/s, then 20.6 on a thread after one main-thread decode).
            The reason every decode of a served model runs on its engine thread (Scheduler.call).
            Runs first, before any other probe has decoded on the main thread.
  seq-ids   greedy decode tok/s of 4 sequences on adjacent seq ids against scattered ones (per-
            sequence KV streams: llama.cpp batches only consecutive ids in one ubatch), the
            reason server/engine/slots.py keeps running sequences on adjacent slots
  prefill   8 chat prompts prefilled one at a time, in pairs, fours, or all in one llama_decode
  split     whether cutting a prompt into two chunks changes its last logits, for prompts of
            30-100 tokens and cuts anywhere: the basis of CPU_FA_TILE_ROWS (server/engine/slots.py)

    .venv/bin/python -m bench.probes                 # all four (about a minute)
    .venv/bin/python -m bench.probes --only split
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import llama_cpp
import numpy as np

from bench.common import PROMPTS
from bench.raw import RawModel
from server.engine.kernel_check import cut_logits
from server.engine.slots import CPU_FA_TILE_ROWS
from server.settings import EMBEDDED_MODEL, resolve_model_path


def probe_threads(m: RawModel, prompt: list[int]) -> None:
    def rate() -> float:
        return m.greedy(prompt, 64).decode_tps

    def on_new_thread() -> float:
        out: list[float] = []
        worker = threading.Thread(target=lambda: out.append(rate()))
        worker.start()
        worker.join()
        return out[0]

    for label, run in (("new thread", on_new_thread), ("main thread", rate), ("new thread after main", on_new_thread)):
        print(f"  {label}: {', '.join(f'{run():.1f}' for _ in range(2))} tok/s", flush=True)


def probe_seq_ids(m: RawModel, prompts: list[list[int]]) -> None:
    m.batched(prompts[:1], 8)  # warm-up
    for layout in ([0, 1, 2, 3], [0, 2, 4, 6], [4, 5, 6, 7], [0], [7]):
        rates = [m.batched(prompts[:len(layout)], 64, seq_ids=layout) for _ in range(2)]
        print(f"  seq ids {layout}: {', '.join(f'{r:.1f}' for r in rates)} tok/s", flush=True)


def probe_prefill(m: RawModel, prompts: list[list[int]]) -> None:
    def run(group: int) -> float:
        llama_cpp.llama_memory_clear(m.mem, True)
        t0 = time.perf_counter()
        for g in range(0, len(prompts), group):
            m._fill((t, j, s, j == len(prompts[s]) - 1)
                    for s in range(g, min(g + group, len(prompts))) for j, t in enumerate(prompts[s]))
            m._decode()
        return time.perf_counter() - t0

    run(len(prompts))  # warm-up
    print(f"  {sum(map(len, prompts))} prompt tokens in {len(prompts)} prompts:")
    for group in (1, 2, 4, len(prompts)):
        times = [run(group) for _ in range(3)]
        print(f"    {group} prompt(s) per llama_decode: {', '.join(f'{t:.3f}' for t in times)} s", flush=True)


def probe_split(m: RawModel) -> None:
    base = m.chat_tokens(" ".join(PROMPTS[:3])) * 3
    n_vocab = m.model.n_vocab()

    def last_logits(tokens: list[int], cut: int | None) -> np.ndarray:
        llama_cpp.llama_memory_clear(m.mem, True)
        return cut_logits(m.ctx, n_vocab, tokens, cut)

    print(f"  CPU_FA_TILE_ROWS = {CPU_FA_TILE_ROWS}: prompts shorter than this should be identical for every cut")
    for n in (30, 47, CPU_FA_TILE_ROWS - 1, CPU_FA_TILE_ROWS, 100):
        tokens = base[:n]
        whole = last_logits(tokens, None)
        same = {cut: np.array_equal(last_logits(tokens, cut), whole) for cut in (1, 5, 12, 25, 40, 50, 62) if cut < n}
        print(f"    {n} tokens: identical after cutting at {[c for c, s in same.items() if s]}, "
              f"different at {[c for c, s in same.items() if not s]}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=EMBEDDED_MODEL)
    ap.add_argument("--n-threads", type=int, default=2)
    ap.add_argument("--only", choices=["threads", "seq-ids", "prefill", "split"])
    args = ap.parse_args()
    m = RawModel(resolve_model_path(args.model), n_threads=args.n_threads, n_ctx=2048, n_seqs=8)
    try:
        prompts = [m.chat_tokens(PROMPTS[i % len(PROMPTS)]) for i in range(8)]
        if args.only in (None, "threads"):
            print("decoding thread (1 sequence, 64 greedy steps, twice each):")
            probe_threads(m, prompts[0])
        if args.only in (None, "seq-ids"):
            print("seq ids (4 sequences, 64 greedy steps, twice):")
            probe_seq_ids(m, prompts)
        if args.only in (None, "prefill"):
            print("prefill grouping:")
            probe_prefill(m, prompts)
        if args.only in (None, "split"):
            print("chunk split exactness:")
            probe_split(m)
    finally:
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
