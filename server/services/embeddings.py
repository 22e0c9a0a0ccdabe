"""Embeddings: mean-pooled, L2-normalised hidden states from the served model."""

from __future__ import annotations

import base64

import numpy as np

from ..errors import InvalidRequest, UnsupportedParameter
from ..protocol.openai import Embedding, EmbeddingList, EmbeddingRequest, Usage
from .models import ModelPool

MAX_INPUTS = 256


class EmbeddingService:
    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def embed(self, req: EmbeddingRequest) -> EmbeddingList:
        engine = self.pool.get(req.model)
        if req.dimensions is not None:
            raise UnsupportedParameter("dimensions is not supported", param="dimensions")
        texts = _texts(req.input, engine)
        if not texts or any(not t for t in texts):
            raise InvalidRequest("input must be a non-empty string or list of non-empty strings", param="input")
        if len(texts) > MAX_INPUTS:
            raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
        n_tokens = sum(len(engine.tokenize(t, add_special=True)) for t in texts)
        vectors = await engine.embed(texts)
        data = []
        for i, vec in enumerate(vectors):
            if req.encoding_format == "base64":
                data.append(Embedding(index=i, embedding=base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()))
            else:
                data.append(Embedding(index=i, embedding=vec))
        return EmbeddingList(data=data, model=engine.name, usage=Usage(prompt_tokens=n_tokens, total_tokens=n_tokens))


def _texts(value, engine) -> list[str]:
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(v, int) for v in value):
        return [engine.detokenize(value)]
    if value and all(isinstance(v, list) for v in value):
        return [engine.detokenize(v) for v in value]
    return list(value)
