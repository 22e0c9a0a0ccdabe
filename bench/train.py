"""Training throughput: Hearth's loop against a plain transformers Trainer + peft, same model and data.

    .venv/bin/python bench/train.py [--samples 16 --batch 4 --steps 3 --model embedded:smollm2]

Both train the same LoRA (r=16, all projections, no dropout) on the same Text-to-SQL chat samples
(the sample database's pairs through the serving prompt with its draft, `--k` few-shot examples, loss on the SQL
only), with batch size `--batch`, for `--steps` measured steps after one warm-up step each.
The figure compared is *sample tokens per second*: the tokens the samples contain (padding not
counted) divided by the time; *loss tokens per second* (the SQL tokens a step trains on, ~35 of a
~1,500-token sample) is printed beside it, since that is what a step is for. Hearth's loop computes the shared schema prefix once per batch,
packs the rest, and runs lm_head on the trained tokens only; the Trainer pads each batch to its
longest sample and computes full logits. A third run, `answer-only`, is Hearth's loop with
`train.prompt_grad: false` (the prompt without gradients, the answer tokens with them).

Both wall and CPU time are reported: 2 shared cores make wall time swing with other load;
CPU seconds / threads is the time on an idle machine. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_samples(tokenizer, n: int, k: int) -> list[dict]:
    from server.sql.sample.paths import PAIRS_DIR
    from server.sql.settings import SqlSettings
    from training.sql import sql_samples
    from training.tokens import encode_chat

    rows = sql_samples(PAIRS_DIR / "train.jsonl", serving=SqlSettings(few_shot_k=k))
    step = max(1, len(rows) // n)
    out = []
    for s in rows[::step][:n]:
        ids, labels = encode_chat(tokenizer, s["messages"], last_turn_only=True)
        out.append({"input_ids": ids, "labels": labels, "source": "sql", "id": s["id"]})
    return out


def bench_hearth(model, samples, batch: int, steps: int, prompt_grad: bool = True) -> dict:
    import torch

    from training.loop import batch_loss
    from training.tokens import make_batches

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batches = make_batches(samples, batch_size=batch, seq_len=4096, seed=0)
    times, cpus, tokens, loss_tokens = [], [], 0, 0
    for i in range(steps + 1):
        b = batches[i % len(batches)]
        t0, c0 = time.perf_counter(), time.process_time()
        loss, n = batch_loss(model, b, torch.device("cpu"), 2, prompt_grad)  # n: tokens carrying loss
        (loss / max(n, 1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i > 0:  # step 0 is warm-up
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            tokens += b.sample_tokens
            loss_tokens += int(n)
    return {"sample_tokens": tokens, "loss_tokens": loss_tokens, "wall_s": sum(times), "cpu_s": sum(cpus)}


def bench_trainer(model, tokenizer, samples, batch: int, steps: int, out: Path) -> dict:
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.cpus = [], []

        def on_step_begin(self, args, state, control, **kw):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)
            self.cpus.append(time.process_time() - self.c0)

    data = [{"input_ids": s["input_ids"], "attention_mask": [1] * len(s["input_ids"]), "labels": s["labels"]}
            for s in samples]
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps + 1,
                             learning_rate=1e-4, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0)
    class InOrder(Trainer):  # the same samples every run: step i sees samples [i·batch, (i+1)·batch)
        def _get_train_sampler(self, *a, **kw):
            from torch.utils.data import SequentialSampler

            return SequentialSampler(self.train_dataset)

    timer = Timer()
    trainer = InOrder(model=model, args=args, train_dataset=data, callbacks=[timer],
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    trainer.train()
    seen = [samples[(i * batch + j) % len(samples)] for i in range(1, steps + 1) for j in range(batch)]
    # The collator shifts nothing: a label other than -100 is a token the loss is taken on.
    return {"sample_tokens": sum(len(s["input_ids"]) for s in seen),
            "loss_tokens": sum(sum(1 for t in s["labels"][1:] if t != -100) for s in seen),
            "wall_s": sum(timer.times[1:]), "cpu_s": sum(timer.cpus[1:])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded:smollm2")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2,
                        help="samples per step; the Trainer needs ~21 GB at 4 (OOM-killed on a 24 GB box)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--k", type=int, default=0, help="few-shot examples per prompt (serving default 0)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    import tempfile

    import torch

    from training.model import add_lora, load_model, load_tokenizer
    from training.recipe import TrainConfig

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    tokenizer = load_tokenizer(args.model)
    samples = load_samples(tokenizer, args.samples, args.k)
    cfg = TrainConfig(lora_r=16, lora_dropout=0.0)
    results = {}
    torch.manual_seed(0)
    model = add_lora(load_model(args.model), cfg)
    model.train()
    results["hearth"] = bench_hearth(model, samples, args.batch, args.steps)
    # ru_maxrss is the process peak so far: hearth runs first, so this is its peak.
    results["hearth"]["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print("hearth:", json.dumps(results["hearth"]), flush=True)
    del model
    # The same loop with train.prompt_grad=False: the prompt without gradients, the answers with.
    torch.manual_seed(0)
    model = add_lora(load_model(args.model), cfg)
    model.train()
    results["hearth_answer_only"] = bench_hearth(model, samples, args.batch, args.steps, prompt_grad=False)
    print("hearth_answer_only:", json.dumps(results["hearth_answer_only"]), flush=True)
    del model
    torch.manual_seed(0)
    model = add_lora(load_model(args.model), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        results["trainer"] = bench_trainer(model, tokenizer, samples, args.batch, args.steps, Path(tmp))
    # Peak of the whole process; when it exceeds hearth's, the excess is the Trainer's.
    results["trainer"]["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    for r in results.values():
        r["tok_s_wall"] = round(r["sample_tokens"] / r["wall_s"], 1)
        r["tok_s_idle"] = round(r["sample_tokens"] / (r["cpu_s"] / args.threads), 1)
        r["loss_tok_s_wall"] = round(r["loss_tokens"] / r["wall_s"], 2)
    results["ratio_wall"] = round(results["hearth"]["tok_s_wall"] / results["trainer"]["tok_s_wall"], 2)
    results["ratio_idle"] = round(results["hearth"]["tok_s_idle"] / results["trainer"]["tok_s_idle"], 2)
    results["ratio_wall_answer_only"] = round(results["hearth_answer_only"]["tok_s_wall"] / results["trainer"]["tok_s_wall"], 2)
    results["setup"] = {"model": args.model, "samples": len(samples), "batch": args.batch, "steps": args.steps,
                        "k": args.k, "threads": args.threads,
                        "mean_sample_tokens": round(sum(len(s["input_ids"]) for s in samples) / len(samples), 1),
                        "load_before": load_before, "load_after": os.getloadavg()}
    print(f"hearth loop : {results['hearth']['tok_s_wall']:8.1f} sample tok/s wall, "
          f"{results['hearth']['tok_s_idle']:8.1f} idle-machine (CPU time)")
    print(f"answer-only : {results['hearth_answer_only']['tok_s_wall']:8.1f} sample tok/s wall, "
          f"{results['hearth_answer_only']['tok_s_idle']:8.1f} idle-machine (train.prompt_grad false)")
    print(f"HF Trainer  : {results['trainer']['tok_s_wall']:8.1f} sample tok/s wall, "
          f"{results['trainer']['tok_s_idle']:8.1f} idle-machine (CPU time)")
    print("loss tokens/s (what a step is for: the SQL tokens trained on), wall: "
          + ", ".join(f"{k} {r['loss_tok_s_wall']}" for k, r in results.items() if isinstance(r, dict) and "loss_tokens" in r)
          + f"; answer-only / Trainer {results['hearth_answer_only']['loss_tok_s_wall'] / results['trainer']['loss_tok_s_wall']:.2f}x")
    print(f"ratio       : {results['ratio_wall']}x wall, {results['ratio_idle']}x CPU time; "
          f"answer-only {results['ratio_wall_answer_only']}x wall")
    print(json.dumps(results["setup"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
