"""Fixtures for the SQL tests: `accepts`, llama.cpp's own grammar sampler fed a text token by token,
and `schema_of`, a SQLite file's schema as the server introspects it."""

from __future__ import annotations

import ctypes

import pytest

from server.sql.connections import Database
from server.sql.grammar import sql_grammar
from server.sql.settings import DatabaseConfig
from server.sql.sample.ddl import database_schema


@pytest.fixture(scope="module")
def accepts(embedded_engine):
    """accepts(text, grammar=None): the sample schema's grammar (or `grammar`) lets `text` through."""
    import llama_cpp
    import numpy as np

    vocab = embedded_engine._vocab
    schema = database_schema("sqlite")

    def check(text: str, grammar: str | None = None) -> bool:
        grammar = grammar or sql_grammar(schema)
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        assert sampler, "grammar did not parse"
        try:
            one = (llama_cpp.llama_token_data * 1)()
            arr = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
            tokens = embedded_engine.tokenize(text, add_special=False, parse_special=False)
            for token in tokens + [llama_cpp.llama_vocab_eos(vocab)]:
                one[0].id, one[0].logit, arr.size = token, 1.0, 1
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
                if not np.isfinite(one[0].logit):
                    return False
                if token != llama_cpp.llama_vocab_eos(vocab):
                    llama_cpp.llama_sampler_accept(sampler, token)
            return True
        finally:
            llama_cpp.llama_sampler_free(sampler)

    return check


def schema_of(path, name: str):
    """The schema of the SQLite file at `path`, introspected as serving does."""
    database = Database(DatabaseConfig(name=name, url=f"sqlite:///{path}"))
    try:
        return database.schema()
    finally:
        database.dispose()
