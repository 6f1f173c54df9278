"""CLIP's byte-level BPE tokenizer (OpenAI's ``simple_tokenizer``), from the merges list alone.

Its file is OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (ships in the ``open-clip-torch`` wheel) or the
Hugging Face ``merges.txt`` (the same merges; the vocabulary is derived from them). Text is cleaned
like ``simple_tokenizer`` (HTML unescaped twice, whitespace collapsed, lower-cased; ``ftfy`` is not
applied); :class:`labelwise.embedding.clip.embedder.ClipEmbedder` wraps the ids as
``<|startoftext|> ... <|endoftext|>`` and cuts them to the context.
"""

from __future__ import annotations

import gzip
import html
import re
import threading
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES_FILE = "merges.txt"
SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
#: CLIP's text context (tokens, start and end included).
CONTEXT_LENGTH = 77
#: OpenAI's merges file holds more lines than CLIP uses; CLIP keeps the first 49152 - 256 - 2.
N_MERGES = 49152 - 256 - 2


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def pre_tokenize(text: str) -> list[str]:
    """Split cleaned text like CLIP's regex ``<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
    [\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+`` (first matching alternative at each position)."""

    def kind(ch: str) -> str:
        if ch.isspace():
            return "space"
        cat = unicodedata.category(ch)
        return "letter" if cat[0] == "L" else "number" if cat[0] == "N" else "other"

    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        for special in (SOT, EOT):
            if text.startswith(special, i):
                out.append(special)
                i += len(special)
                break
        else:
            if text[i] == "'":
                match = next((c for c in _CONTRACTIONS if text[i + 1 : i + 1 + len(c)].lower() == c), None)
                if match is not None:
                    out.append(text[i : i + 1 + len(match)])
                    i += 1 + len(match)
                    continue
            k = kind(text[i])
            if k == "space":
                i += 1
            elif k == "number":
                out.append(text[i])
                i += 1
            else:
                j = i + 1
                while j < n and kind(text[j]) == k:
                    j += 1
                out.append(text[i:j])
                i = j
    return out


def clean_text(text: str) -> str:
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """CLIP's byte-level BPE (OpenAI ``simple_tokenizer``), from the merges list alone.

    Vocabulary: the 256 byte characters, the same with ``</w>``, one entry per merge (in rank
    order), then ``<|startoftext|>`` and ``<|endoftext|>`` (49406, 49407 for the standard file).
    """

    def __init__(self, merges: Sequence[tuple[str, str]]) -> None:
        byte_chars = list(bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder: dict[str, int] = {t: i for i, t in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.sot_id = self.encoder[SOT]
        self.eot_id = self.encoder[EOT]
        self._byte_encoder = bytes_to_unicode()
        self._byte_decoder = {v: k for k, v in self._byte_encoder.items()}
        self._cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> ClipTokenizer:
        """``bpe_simple_vocab_16e6.txt.gz`` (OpenAI) or ``merges.txt`` (Hugging Face)."""
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
        lines = text.split("\n")
        if lines and "#version" in lines[0]:  # OpenAI's reads "bpe_simple_vocab_16e6.txt#version: 0.2"
            lines = lines[1:]
        merges = [tuple(line.split()) for line in lines if line.strip()][:N_MERGES]
        bad = [m for m in merges if len(m) != 2]
        if bad:
            raise ValueError(f"{path.name}: malformed merge line {bad[0]!r}")
        return cls([(a, b) for a, b in merges])

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, token: str) -> list[str]:
        """BPE pieces of one pre-token (already byte-encoded), the last one ending in ``</w>``."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        with self._lock:
            if len(self._cache) < 100_000:
                self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no start/end tokens)."""
        ids: list[int] = []
        for tok in pre_tokenize(clean_text(text)):
            encoded = (
                tok if tok in (SOT, EOT) else "".join(self._byte_encoder[b] for b in tok.encode("utf-8"))
            )
            ids.extend(self.encoder[p] for p in self.bpe(encoded))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (``</w>`` becomes a space; special tokens kept as text)."""
        out = bytearray()
        for c in "".join(self.decoder[i] for i in ids).replace("</w>", " "):
            if c in self._byte_decoder:
                out.append(self._byte_decoder[c])
            else:
                out.extend(c.encode("utf-8"))
        return out.decode("utf-8", errors="replace").strip()
