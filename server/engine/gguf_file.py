"""A model file checked before `hearth serve` starts: present, a GGUF, and whole.

llama.cpp refuses a bad file too, but only once the server is up and loading in the background,
and its Python error says "Failed to load model from file" whatever the cause. `check_gguf` reads
the header and tensor table (not the weights: milliseconds) so that `hearth serve` can stop at
once, with a non-zero exit and a message that says what is wrong:

  missing     the path does not exist (or is not a regular file)
  not a GGUF  the first 4 bytes are not b"GGUF" (a safetensors file, an HTML error page, ...)
  truncated   the header ends early, or the file is shorter than where its tensor table says the
              last tensor's data ends (a copy or download cut short)

The format (ggml's docs/gguf.md): magic, version, tensor count, metadata count, metadata
key/values, tensor infos (name, dims, type, offset), padding to `general.alignment`, data.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = b"GGUF"
# ggml type id -> (bytes per block, values per block); a type missing here is checked by offset only.
TYPE_SIZES = {
    0: (4, 1), 1: (2, 1), 2: (18, 32), 3: (20, 32), 6: (22, 32), 7: (24, 32), 8: (34, 32), 9: (36, 32),
    10: (84, 256), 11: (110, 256), 12: (144, 256), 13: (176, 256), 14: (210, 256), 15: (292, 256),
    24: (1, 1), 25: (2, 1), 26: (4, 1), 27: (8, 1), 28: (8, 1), 30: (2, 1),
}
# Metadata value types: fixed sizes by id; 8 is a string, 9 an array.
_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class BadModelFile(ValueError):
    """The model file is missing, not a GGUF, or truncated; the message says which."""


class _Reader:
    def __init__(self, f, path: Path, size: int):
        self.f, self.path, self.size = f, path, size

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) < n:
            raise BadModelFile(f"model file {self.path} is truncated: its GGUF header ends early "
                               f"({self.size} bytes); copy it again")
        return data

    def u32(self) -> int:
        return struct.unpack("<I", self.read(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.read(8))[0]

    def string(self) -> bytes:
        n = self.u64()
        if n > self.size:
            raise BadModelFile(f"model file {self.path} is corrupt: a header string of {n} bytes")
        return self.read(n)

    def value(self, kind: int) -> object:
        """A scalar or string metadata value decoded; an array (the vocabulary, say) skipped, None."""
        if kind in _FORMATS:
            return struct.unpack(_FORMATS[kind], self.read(_SCALARS[kind]))[0]
        if kind == 8:
            return self.string().decode("utf-8", "replace")
        return self.skip_value(kind)

    def skip_value(self, kind: int) -> object:
        if kind in _SCALARS:
            data = self.read(_SCALARS[kind])
            return struct.unpack("<I", data)[0] if kind == 4 else None
        if kind == 8:
            self.string()
            return None
        if kind == 9:
            item, count = self.u32(), self.u64()
            if item in _SCALARS:
                self.read(_SCALARS[item] * count)
            else:
                for _ in range(count):
                    self.skip_value(item)
            return None
        raise BadModelFile(f"model file {self.path} is corrupt: unknown metadata type {kind}")


def check_gguf(path: str | Path) -> None:
    """Raises BadModelFile when `path` is missing, not a GGUF file, or shorter than its tensor table says."""
    path = Path(path)
    if not path.is_file():
        raise BadModelFile(f"model file {path} does not exist" if not path.exists() else
                           f"model path {path} is not a regular file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if head != MAGIC:
            raise BadModelFile(f"model file {path} is not a GGUF file (it starts with {head!r}, not {MAGIC!r}); "
                               "convert a Hugging Face model with `hearth export`")
        r = _Reader(f, path, size)
        r.u32()  # version
        n_tensors, n_kv = r.u64(), r.u64()
        alignment = 32
        for _ in range(n_kv):
            key, kind = r.string(), r.u32()
            value = r.skip_value(kind)
            if key == b"general.alignment" and kind == 4:
                alignment = value or 32
        end = 0
        for _ in range(n_tensors):
            r.string()
            dims = [r.u64() for _ in range(r.u32())]
            kind, offset = r.u32(), r.u64()
            count = 1
            for d in dims:
                count *= d
            block_bytes, block_values = TYPE_SIZES.get(kind, (0, 1))
            end = max(end, offset + count // block_values * block_bytes)
        data_start = -(-f.tell() // alignment) * alignment
    if end and data_start + end > size:
        raise BadModelFile(f"model file {path} is truncated: {size} bytes, but its tensors end at byte "
                           f"{data_start + end}; copy it again")


def read_metadata(path: str | Path) -> dict:
    """Every scalar and string key of a GGUF header (arrays, such as the vocabulary, left out), plus
    "GGUF.version"; no weights are read. `hearth doctor` sizes memory from it before loading."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise BadModelFile(f"model file {path} is not a GGUF file")
        r = _Reader(f, path, path.stat().st_size)
        meta: dict = {"GGUF.version": r.u32()}
        r.u64()  # tensor count
        for _ in range(r.u64()):
            key, kind = r.string().decode("utf-8", "replace"), r.u32()
            value = r.value(kind)
            if kind != 9:
                meta[key] = value
        return meta


def kv_bytes_per_token(meta: dict) -> int:
    """KV-cache bytes one token takes with llama.cpp's default f16 cache: layers x KV heads x
    (key length + value length) x 2 bytes (deploy/README.md, Sizing)."""
    arch = meta["general.architecture"]
    layers = int(meta[f"{arch}.block_count"])
    heads = int(meta[f"{arch}.attention.head_count"])
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
    head_dim = int(meta[f"{arch}.embedding_length"]) // heads
    key_len = int(meta.get(f"{arch}.attention.key_length", head_dim))
    value_len = int(meta.get(f"{arch}.attention.value_length", head_dim))
    return layers * kv_heads * (key_len + value_len) * 2
