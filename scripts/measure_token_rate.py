"""Tokens embedded per second by the built e5 int8 model on ONE thread: the basis of
``Settings.max_request_tokens`` (a request must finish well inside the API's 30 s at one vCPU).

    PYTHONPATH=shared .venv/bin/python scripts/measure_token_rate.py [--model multilingual-e5-small]

Two workloads, each timed (best of ``--rounds``) after a warm-up call:
- ``short``: 256 sentences of ~20 tokens (what classify usually sees);
- ``long``: 16 texts of ~2,000 tokens (full 512-token windows, the slowest tokens: attention is
  quadratic in the window).
The slower rate is the one a worst-case request runs at.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.settings import Settings

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank, {i} times today."


def rate(embedder: OnnxEmbedder, texts: list[str], rounds: int) -> tuple[float, int, float]:
    tokens = sum(embedder.count_tokens(texts, "input"))
    embedder.embed(texts[:2], role="input")  # warm-up
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        embedder.embed(texts, role="input")
        best = min(best, time.perf_counter() - started)
    return tokens / best, tokens, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.from_environ()
    embedder = OnnxEmbedder.from_dir(Path(settings.model_dir) / args.model, intra_op_threads=1)
    short = [SENTENCE.format(i=i) for i in range(256)]
    long = [" ".join(SENTENCE.format(i=i + j) for j in range(100)) for i in range(16)]
    print(f"model {args.model}, 1 thread, load average {os.getloadavg()[0]:.2f}")
    rates = {}
    for name, texts in (("short", short), ("long", long)):
        per_s, tokens, seconds = rate(embedder, texts, args.rounds)
        rates[name] = per_s
        print(f"{name:>5}: {tokens} tokens in {seconds:.2f} s = {per_s:,.0f} tokens/s")
    slowest = min(rates.values())
    print(f"slowest {slowest:,.0f} tokens/s; 20 s of work = {20 * slowest:,.0f} tokens")


if __name__ == "__main__":
    main()
