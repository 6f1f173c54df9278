#!/usr/bin/env python
"""The measured basis of the per-request limits against the 30 s budget (docs/deploy.md, "The 30 s
budget"): how long the real model takes to embed ``max_inputs`` (1,024) short texts and 1,024 texts
of one full window (512 tokens), at one onnxruntime thread (Lambda gives one vCPU at 1,769 MB).

    python scripts/measure_budget.py                 # multilingual-e5-small, 1 thread, 1,024 each
    python scripts/measure_budget.py --n 256 --threads 2

Each case is embedded once as one request would embed it (one ``embed`` call, no deadline), after
a warm-up call; it prints one line per case and a JSON summary (seconds, texts/s, tokens, and how
many such texts fit the default 25 s request budget).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.settings import Settings

SHORT = [
    "I was charged twice for my last order, please refund one of the payments",
    "My parcel was supposed to arrive on Monday and there is still no sign of it",
    "I cannot log in since I changed my password yesterday evening",
    "The invoice shows the wrong company name and VAT number",
    "Can I change the delivery address after the order has shipped?",
    "The app keeps logging me out every few minutes on my phone",
    "Where do I download the receipt for my annual subscription?",
    "The package arrived damaged and one item is missing from the box",
]
WORDS = [
    *[
        "order",
        "refund",
        "parcel",
        "delivery",
        "invoice",
        "payment",
        "account",
        "password",
        "login",
        "shipping",
        "address",
    ],
    *[
        "receipt",
        "subscription",
        "package",
        "damaged",
        "missing",
        "customer",
        "support",
        "request",
        "charge",
        "bank",
        "card",
    ],
    *[
        "courier",
        "warehouse",
        "tracking",
        "number",
        "weekend",
        "evening",
        "morning",
        "problem",
        "question",
        "answer",
    ],
    *["message", "email", "phone", "website"],
]


def long_text(embedder: OnnxEmbedder, seed: int, tokens: int) -> str:
    """A text of exactly ``tokens`` tokens as the model reads it (prefix and specials included)."""
    words = [WORDS[(seed * 7 + i * 13) % len(WORDS)] for i in range(tokens)]
    lo, hi = 1, len(words)
    while lo < hi:  # the most words whose count is <= tokens
        mid = (lo + hi + 1) // 2
        if embedder.count_tokens([" ".join(words[:mid])], "input")[0] <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def measure(embedder: OnnxEmbedder, name: str, texts: list[str], budget_s: float) -> dict[str, object]:
    tokens = embedder.count_tokens(texts, "input")
    started = time.perf_counter()
    embedder.embed(texts, "input")
    seconds = time.perf_counter() - started
    per_text = seconds / len(texts)
    row: dict[str, object] = {
        "case": name,
        "texts": len(texts),
        "tokens_per_text": round(sum(tokens) / len(tokens), 1),
        "seconds": round(seconds, 2),
        "texts_per_second": round(len(texts) / seconds, 1),
        "ms_per_text": round(per_text * 1000, 2),
        "fit_in_budget": int(budget_s / per_text),
        "over_budget": seconds > budget_s,
    }
    print(
        f"{name}: {len(texts)} texts x {row['tokens_per_text']} tokens in {seconds:.2f} s"
        f" ({row['texts_per_second']} texts/s); {row['fit_in_budget']} fit {budget_s:g} s"
        f" -> {'OVER' if seconds > budget_s else 'within'} the budget",
        flush=True,
    )
    return row


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {platform.machine()}, python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--n", type=int, default=1024, help="texts per case (max_inputs: 1,024)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--long-tokens", type=int, default=512, help="tokens per long text (one window)")
    args = parser.parse_args()
    settings = Settings.from_environ()
    embedder = OnnxEmbedder.from_dir(settings.model_dir / args.model, intra_op_threads=args.threads)
    short = [f"{SHORT[i % len(SHORT)]} (#{i})" for i in range(args.n)]
    long = [long_text(embedder, i, args.long_tokens) for i in range(args.n)]
    embedder.embed(short[:8] + long[:2], "input")  # warm-up
    budget = settings.request_budget_s
    rows = [measure(embedder, "short", short, budget), measure(embedder, "long", long, budget)]
    print(
        json.dumps(
            {
                "model": args.model,
                "threads": args.threads,
                "batch_size": embedder.manifest.batch_size,
                "budget_s": budget,
                "machine": machine(),
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
