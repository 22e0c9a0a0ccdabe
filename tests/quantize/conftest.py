from tests.training.conftest import make_tiny_model, tiny_model, tokenizer, tokenizer_dir  # noqa: F401
