"""Continuous batching over llama.cpp's low-level API, with slots and a prefix cache.

One worker thread owns the llama context. Each step it builds one `llama_batch` holding
  * one token for every slot that is decoding (so running streams advance every step), and
  * a chunk of prompt for slots still prefilling, within `n_batch`, so a long new prompt never
    stalls the streams already running (chunked prefill),
calls `llama_decode` on it (a long prompt chunk in a llama_decode of its own: see `_step`), then
samples every slot that produced logits with that slot's own sampler chain. New requests join
between steps; a finished or cancelled slot frees at once.

Prefix cache: a slot keeps the KV cells of its last sequence after it finishes. A new request
is placed where its prompt shares the longest prefix with any slot's cells: in that slot if it is
idle, or (for a busy slot) that slot's stream is copied to an idle slot with `llama_memory_seq_cp`
and trimmed to the shared prefix. An idle slot is taken so that the running sequences stay on
adjacent seq ids, least recently used first among those (server/engine/slots.py), so the cache is
bounded by the slot count (n_ctx cells per slot).

Every other llama_decode of the model (the load-time kernel check, embeddings) also runs on this
thread, through `call`: with llama.cpp's OpenMP build, each thread that decodes keeps its own
OpenMP worker team; once the teams' threads outnumber the cores, libgomp throttles its
spin-waits, and single-stream decode fell from 50 to 20 tok/s on 2 cores after one decode on
the main thread (measured on an AVX-512 Xeon VM).

Fairness between API keys: a job carries the key id of the request that submitted it
(server/keys.py's context variable). A free slot goes to the waiting job whose key has the
fewest slots running, ties to the key served least recently, oldest job first within a key: keys
take turns, so one key's flood waits behind its own requests. And a key with nothing in the engine
is never refused for a full queue (the queue may then exceed max_queue by one job per such key),
so a flood cannot lock other keys out. A prompt of a key with nothing decoding is prefilled first,
in a llama_decode of its own ahead of the running streams' tokens, and its first token is handed
over before their step runs. With no keys configured every job is one key's: FIFO.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from typing import Callable

import llama_cpp

from ..errors import EngineFailure, HearthError, Overloaded
from ..keys import current_key_id
from .base import FinishEvent, GenerationRequest, TokenEvent, TopLogprob
from .batch import BatchEntry, fill_batch
from .jobs import Job, Outbox
from .sampling import SamplerChain, logprobs_at
from .slots import (
    CPU_FA_TILE_ROWS, MIN_REUSE_TOKENS, SPLIT_KV_FREE_END, Slot, chunk_end, common_prefix, compact_choices,
    reusable_length, run_span, tiled_chunk_end,
)
from .text import IncrementalText

log = logging.getLogger("hearth.engine")


class Scheduler:
    def __init__(
        self,
        *,
        ctx,
        vocab,
        n_vocab: int,
        n_slots: int,
        n_batch: int,
        n_ctx_per_seq: int,
        max_queue: int,
        prefill_chunk: int,
        token_piece: Callable[[int], bytes],
        token_text: Callable[[int], str],
        short_prompt_reuse: bool = False,
        long_prompt_reuse: bool = False,
    ):
        self._ctx = ctx
        self._vocab = vocab
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_vocab = n_vocab
        self._n_batch = n_batch
        self._n_ctx_per_seq = n_ctx_per_seq
        self._max_queue = max_queue
        self.block = min(prefill_chunk, n_batch)  # prefill block size, in tokens
        # Reuse short prompts' prefixes at any length (see CPU_FA_TILE_ROWS): CPU builds only.
        # The engine may set it after its load-time check, before any request arrives.
        self.short_prompt_reuse = short_prompt_reuse
        # Prefill longer prompts in chunks of CPU_FA_TILE_ROWS rows or more and reuse their prefixes
        # at any length that leaves that many rows to prefill: likewise, set by the engine's check.
        self.long_prompt_reuse = long_prompt_reuse
        self._piece = token_piece
        self._token_text = token_text
        self.slots = [Slot(seq_id=i) for i in range(n_slots)]
        self._waiting: collections.deque[Job] = collections.deque()
        self._turns = 0  # jobs taken off the queue so far
        self._last_turn: dict[str, int] = {}  # key id -> the turn its last job was taken at
        self._calls: collections.deque[tuple[Callable, concurrent.futures.Future]] = collections.deque()
        self._cv = threading.Condition()
        self._running = True
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._outbox = Outbox()
        self.prefix_hits = 0
        self.prefix_lookups = 0
        self.reused_tokens = 0
        self._thread = threading.Thread(target=self._run, name="hearth-scheduler", daemon=True)
        self._thread.start()

    # -- called from the event loop -------------------------------------------------------

    def submit(self, request: GenerationRequest) -> Job:
        job = Job(request=request, loop=asyncio.get_running_loop(), queue=asyncio.Queue(), outbox=self._outbox,
                  client=current_key_id.get())
        with self._cv:
            free = sum(1 for s in self.slots if s.job is None)
            if len(self._waiting) - free >= self._max_queue and self._holds(job.client):
                raise Overloaded(
                    f"the server is busy: {len(self._waiting)} requests already wait for a slot; retry shortly",
                    retry_after=1,
                )
            self._waiting.append(job)
            self._cv.notify()
        return job

    def _holds(self, client: str) -> bool:
        """Whether `client` has a job waiting or running (call with the lock held)."""
        return any(j.client == client for j in self._waiting) or any(
            s.job is not None and s.job.client == client for s in self.slots)

    def submit_call(self, fn: Callable[[], object]) -> concurrent.futures.Future:
        """Runs `fn()` on the engine thread between two steps; the future holds its result."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cv:
            if not self._running:
                raise EngineFailure("the engine is shutting down")
            self._calls.append((fn, future))
            self._cv.notify()
        return future

    def call(self, fn: Callable[[], object]):
        """`fn()` run on the engine thread (see the module's note on OpenMP teams), blocking."""
        if threading.current_thread() is self._thread:
            return fn()
        return self.submit_call(fn).result()

    def cancel(self, job: Job) -> None:
        with self._cv:
            job.cancelled = True
            self._cv.notify()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def slots_in_use(self) -> int:
        return sum(1 for s in self.slots if s.job is not None)

    @property
    def kv_cache_usage(self) -> float:
        """Fraction of the KV cells (n_ctx per slot) that running sequences hold or are about to
        fill with their prompt; read from the event loop while the worker runs (len() is atomic)."""
        used = sum(len(s.cached) + len(s.pending) for s in list(self.slots) if s.job is not None)
        return min(1.0, used / (len(self.slots) * self._n_ctx_per_seq))

    def close(self) -> None:
        with self._cv:
            self._running = False
            self._cv.notify()
        self._thread.join(timeout=10)
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    # -- the worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._running and not self._waiting and not self._calls and not any(s.job for s in self.slots):
                    self._cv.wait()
                if not self._running:
                    break
                calls = list(self._calls)
                self._calls.clear()
                self._admit()
            for fn, future in calls:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # the caller gets it, the engine keeps serving
                        future.set_exception(exc)
            try:
                self._reap_cancelled()
                if any(s.job for s in self.slots):
                    self._step()
            except Exception as exc:  # a failure inside llama.cpp: fail the running jobs, keep serving
                log.exception("engine step failed")
                for slot in self.slots:
                    if slot.job is not None:
                        slot.job.emit(EngineFailure(f"inference failed: {type(exc).__name__}"))
                        self._release(slot, keep_cache=False)
            self._outbox.flush()
        for slot in self.slots:
            if slot.job is not None:
                slot.job.emit(EngineFailure("the engine is shutting down"))
                self._release(slot, keep_cache=False)
        with self._cv:
            calls, self._calls = list(self._calls), collections.deque()
        for _, future in calls:
            if future.set_running_or_notify_cancel():
                future.set_exception(EngineFailure("the engine is shutting down"))
        self._outbox.flush()

    def _admit(self) -> None:
        while self._waiting:
            idle = [s for s in self.slots if s.job is None]
            if not idle:
                return
            job = self._next_waiting()
            if job.cancelled:
                continue
            try:
                # How many slots will be busy once every waiting request has one.
                final_count = min(len(self.slots), len(self.slots) - len(idle) + 1 + len(self._waiting))
                self._place(job, idle, final_count)
            except HearthError as exc:  # e.g. a grammar llama.cpp cannot parse: this request fails, not the engine
                job.emit(exc)
                for slot in idle:
                    if slot.job is job:
                        self._release(slot, keep_cache=False)

    def _next_waiting(self) -> Job:
        """Takes the next job off the queue: keys take turns (see the module's note)."""
        if len({j.client for j in self._waiting}) > 1:
            running = collections.Counter(s.job.client for s in self.slots if s.job is not None)
            i = min(range(len(self._waiting)), key=lambda i: (
                running[self._waiting[i].client], self._last_turn.get(self._waiting[i].client, -1), i))
            job = self._waiting[i]
            del self._waiting[i]
        else:
            job = self._waiting.popleft()
        self._turns += 1
        self._last_turn[job.client] = self._turns
        return job

    def _place(self, job: Job, idle: list[Slot], final_count: int) -> None:
        prompt = list(job.request.prompt_tokens)
        # Keep at least one prompt token to decode: its logits give the first sampled token.
        limit = len(prompt) - 1
        best, best_len = None, 0
        for slot in self.slots:
            n = common_prefix(slot.cached, prompt, limit)
            if n > best_len:
                best, best_len = slot, n
        # The slot holds this whole prompt (a repeat, or the next turn of its conversation).
        whole = best_len > 0 and best_len == limit
        # Reuse up to a chunk end only. A token's KV values depend (in the last bits) on the shape
        # of the chunk it was computed in, so prompts are prefilled in blocks aligned to multiples
        # of `block` (or ending at the request's prefix boundary, slots.chunk_end), and a hit
        # restarts at a chunk end the cache shares: the tail is then computed in exactly the chunks
        # a miss would use, and hits give the same output as misses (slots.reusable_length).
        # On a CPU build the chunks can be cut finer (CPU_FA_TILE_ROWS): a short prompt reuses a
        # short one's cells at any length, and a longer one, prefilled in chunks of at least
        # CPU_FA_TILE_ROWS rows, reuses another such prompt's at any length that leaves that many
        # tokens to prefill: a warm request recomputes only what it does not share, or 64 tokens.
        short = self.short_prompt_reuse and len(prompt) < CPU_FA_TILE_ROWS
        long = self.long_prompt_reuse and len(prompt) >= CPU_FA_TILE_ROWS
        boundary = job.request.prefix_boundary
        if boundary is not None and not 0 < boundary < len(prompt):
            boundary = None
        if best is not None and not (short and best.short):
            best_len = reusable_length(best_len, boundary, best.boundary, self.block, long=long,
                                       cached_long=best.long, cached_prefilled=best.prefilled, length=len(prompt))
        self.prefix_lookups += 1
        # Keep the running sequences on a compact run of seq ids. With one KV stream per slot,
        # llama.cpp puts only consecutive seq ids in one ubatch (split_equal, sequential) and views
        # the streams from the lowest to the highest id (llama_kv_cache::get_k), so 4 streams on
        # seq ids 0, 2, 4, 6 take 4 graph runs per step: measured here, 90 tok/s against 155 on
        # ids 0-3 (raw 4-way greedy decode, bench/raw.py's context).
        # A burst of requests (`final_count` slots busy once all are placed) may take any slots
        # that still end on a compact run, so each can find its own cached prompt.
        compact = compact_choices(self.slots, idle, final_count)
        others = [s for s in compact if s is not best]
        # Reuse the matching slot in place when that loses nothing (its cache is all prefix, or it
        # holds this whole prompt, whose answer a repeat recomputes anyway) or no other compact
        # slot is free, and it keeps the run compact. Otherwise (a shared system prompt or schema
        # only) copy the prefix into another compact idle slot, so the matching slot keeps its
        # conversation for that conversation's next turn.
        in_place = best is not None and best.job is None and best_len > 0 and best in compact and (
            len(best.cached) <= best_len or whole or not others)
        if in_place:
            target = best
            llama_cpp.llama_memory_seq_rm(self._mem, target.seq_id, best_len, -1)
            reused = best_len
        else:
            # The shortest run first (a request of a burst that ends early leaves no hole), then LRU.
            target = min(others or compact, key=lambda s: (run_span(self.slots, s), s.last_used))
            llama_cpp.llama_memory_seq_rm(self._mem, target.seq_id, -1, -1)
            reused = 0
            if best is not None and best is not target and best_len >= MIN_REUSE_TOKENS:
                # Each slot has its own KV stream (see LlamaEngine), and llama.cpp copies across
                # streams only whole: copy it all, then drop what follows the shared prefix.
                llama_cpp.llama_memory_seq_cp(self._mem, best.seq_id, target.seq_id, -1, -1)
                llama_cpp.llama_memory_seq_rm(self._mem, target.seq_id, best_len, -1)
                reused = best_len
        if reused:
            self.prefix_hits += 1
            self.reused_tokens += reused
        target.cached = prompt[:reused]
        target.short = short
        target.boundary = boundary
        target.long = long
        target.pending = prompt[reused:]
        target.job = job
        target.reused = reused
        target.prompt_len = len(prompt)
        target.n_generated = 0
        target.next_token = None
        target.first_token_at = None
        target.sampler = SamplerChain(self._vocab, self._n_vocab, job.request.params)
        target.text = IncrementalText(job.request.params.stop)
        # Teacher forcing for a score (forced tokens with logprobs) needs no sampling: the forced
        # tokens join the prompt and every logits row from the prompt's last token on is read in
        # the prefill, one llama_decode for what would take a decode step per token. The rows
        # agree with step-by-step decoding to float rounding (tests/server/engine/test_forced_tokens.py).
        params = job.request.params
        room = self._n_ctx_per_seq - len(prompt)
        target.scoring = min(len(params.forced_tokens), params.max_tokens, room) if params.logprobs else 0
        if target.scoring > 0:
            target.pending = target.pending + list(params.forced_tokens[:target.scoring - 1])
        target.prefilled = reused + len(target.pending)

    def _reap_cancelled(self) -> None:
        for slot in self.slots:
            if slot.job is not None and slot.job.cancelled:
                self._release(slot, keep_cache=True)

    def _release(self, slot: Slot, *, keep_cache: bool) -> None:
        if slot.sampler is not None:
            slot.sampler.close()
        slot.sampler = None
        slot.job = None
        slot.scoring = 0
        slot.pending = []
        slot.next_token = None
        slot.last_used = time.monotonic()
        if not keep_cache:
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            slot.cached = []

    def _step(self) -> None:
        budget = self._n_batch
        active = [s for s in self.slots if s.job is not None]
        decodes: list[BatchEntry] = []
        for slot in active:
            slot.batch_index = -1
            if slot.next_token is not None:
                decodes.append((slot, [slot.next_token], True))
                slot.next_token = None
                budget -= 1
        # Prefill, oldest request first, at most one aligned block per sequence per step. With
        # streams running, prompt work per step is capped at one block so they keep flowing.
        chunks: list[BatchEntry] = []
        chunk_cap = self.block if decodes else self._n_batch
        for slot in sorted((s for s in active if s.pending), key=lambda s: s.job.enqueued_at):
            pos = len(slot.cached)
            end = tiled_chunk_end(pos, slot.prefilled, self.block) if slot.long else chunk_end(
                pos, slot.boundary, self.block)
            take = min(len(slot.pending), end - pos)
            if take > min(budget, chunk_cap) and (decodes or chunks):
                continue
            piece, slot.pending = slot.pending[:take], slot.pending[take:]
            # A score wants the logits of every position from the prompt's last token on.
            wanted = max(0, pos + take - max(pos, slot.prompt_len - 1)) if slot.scoring > 0 else not slot.pending
            chunks.append((slot, piece, wanted))
            budget -= take
            chunk_cap -= take
        # A prompt chunk is computed alone, as it is when nothing else runs, so that its arithmetic
        # does not depend on what else is batched: llama.cpp would cut it into ubatches beside the
        # other sequences' tokens (one token first, then the rest), and on a CPU build a chunk of
        # CPU_FA_TILE_ROWS rows or more rounds differently when cut (slots.py). Shorter chunks there
        # are computed alike however they are cut, and share the decode tokens' llama_decode, if
        # they end within SPLIT_KV_FREE_END: past it, llama.cpp could leave a lone last row of the
        # chunk to a ubatch of its own (split_equal takes as many rows of each sequence as the
        # shortest has), and a lone row there takes the split-KV path, which rounds differently.
        def cut_alike(chunk) -> bool:
            slot, piece = chunk[0], chunk[1]
            return (self.short_prompt_reuse and len(piece) < CPU_FA_TILE_ROWS
                    and len(slot.cached) + len(piece) <= SPLIT_KV_FREE_END)

        # Prefill first for a key with nothing decoding: its prompt chunk runs in a llama_decode of
        # its own ahead of the running streams, and its first token goes out before their step, so
        # another key's flood delays it by the step in flight only (issue 26: fairness between keys).
        decoding_keys = {slot.job.client for slot, _, _ in decodes}
        def goes_first(chunk) -> bool:
            return bool(decodes) and chunk[0].job.client not in decoding_keys

        first = [c for c in chunks if goes_first(c)]
        rest = [c for c in chunks if not goes_first(c)]
        shared = decodes + [c for c in rest if cut_alike(c)]
        for chunk in first:
            self._decode([chunk])
        if first:
            self._outbox.flush()
        groups = ([shared] if shared else []) + [[c] for c in rest if not cut_alike(c)]
        for group in groups:
            self._decode(group)

    def _decode(self, group: list[BatchEntry]) -> None:
        """One llama_decode over `group`, then a token sampled for every slot that wanted logits."""
        fill_batch(self._batch, group)
        rc = llama_cpp.llama_decode(self._ctx, self._batch)
        if rc == 1:
            # No free KV cells: drop idle slots' caches and retry once.
            self._evict_idle()
            rc = llama_cpp.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        for slot, _, _ in group:
            if slot.batch_index >= 0 and slot.job is not None:
                self._score(slot) if slot.scoring > 0 else self._sample(slot)

    def _evict_idle(self) -> None:
        for slot in self.slots:
            if slot.job is None and slot.cached:
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                slot.cached = []

    def _sample(self, slot: Slot) -> None:
        job = slot.job
        params = job.request.params
        forced = params.forced_tokens
        token = forced[slot.n_generated] if forced else slot.sampler.sample(self._ctx, slot.batch_index)
        now = time.perf_counter()
        if slot.first_token_at is None:
            slot.first_token_at = now
        if not forced and llama_cpp.llama_vocab_is_eog(self._vocab, token):
            return self._finish(slot, "stop")
        slot.n_generated += 1
        logprob, top = None, ()
        if params.logprobs:
            logprob, pairs = logprobs_at(self._ctx, slot.batch_index, self._n_vocab, token, params.top_logprobs)
            top = tuple(TopLogprob(self._token_text(t), lp, tuple(self._piece(t))) for t, lp in pairs)
        text = slot.text.feed(self._piece(token))
        if text or params.logprobs:
            job.emit(TokenEvent(text=text, token_ids=(token,), logprob=logprob, top_logprobs=top))
        if slot.text.stopped or (forced and slot.n_generated >= len(forced)):
            return self._finish(slot, "stop")
        if slot.n_generated >= params.max_tokens or len(slot.cached) + 1 >= self._n_ctx_per_seq:
            return self._finish(slot, "length")
        slot.next_token = token

    def _score(self, slot: Slot) -> None:
        """The forced tokens this step's prefill rows predict, each with its log-probability."""
        job, params = slot.job, slot.job.request.params
        if slot.first_token_at is None:
            slot.first_token_at = time.perf_counter()
        for row in slot.batch_rows:
            token = params.forced_tokens[slot.n_generated]
            slot.n_generated += 1
            logprob, pairs = logprobs_at(self._ctx, row, self._n_vocab, token, params.top_logprobs)
            top = tuple(TopLogprob(self._token_text(t), lp, tuple(self._piece(t))) for t, lp in pairs)
            job.emit(TokenEvent(text=slot.text.feed(self._piece(token)), token_ids=(token,), logprob=logprob,
                                top_logprobs=top))
        if slot.n_generated >= slot.scoring:
            self._finish(slot, "stop" if slot.scoring == len(params.forced_tokens) else "length")

    def _finish(self, slot: Slot, reason: str) -> None:
        job = slot.job
        tail = slot.text.flush()
        ttft = slot.first_token_at - job.enqueued_at if slot.first_token_at else None
        finish = FinishEvent(
            finish_reason=reason,
            prompt_tokens=slot.prompt_len,
            completion_tokens=slot.n_generated,
            cached_tokens=slot.reused,
            time_to_first_token_s=ttft,
        )
        # Free the slot before the client hears that it finished, so a client that sends its
        # next request at once finds the slot free (and is not refused by a full queue).
        self._release(slot, keep_cache=True)
        if tail:
            job.emit(TokenEvent(text=tail))
        job.emit(finish)
