"""Records/s of the upload runner on a 10,000-line file (local runner, real int8 model).

    .venv/bin/python scripts/bench_uploads.py [--lines 10000] [--format jsonl|csv|txt] [--model NAME]

Writes a synthetic support-ticket file to a temporary directory, classifies it zero-shot with
``labelwise.uploads.local.classify_file`` (the same readers, parts and outputs as the Lambda) and prints
records/s measured end to end (reading, embedding, scoring, writing parts, assembling results).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from labelwise.runtime import build_services
from labelwise.settings import Settings
from labelwise.uploads.local import classify_file, local_config

LABELS = ["billing and payments", "account access", "delivery and shipping", "product defect", "praise"]
SUBJECTS = [
    "I was charged twice for order {n}",
    "my password reset email for account {n} never arrives",
    "parcel {n} is still not delivered after two weeks",
    "the blender from order {n} stopped working after a day",
    "thanks, the support agent on ticket {n} was great",
]


def write_file(path: Path, lines: int, fmt: str) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            out.write("id,text\r\n")
        for i in range(lines):
            text = rng.choice(SUBJECTS).format(n=rng.randint(1000, 99999))
            if fmt == "jsonl":
                out.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")
            elif fmt == "csv":
                out.write(f't{i},"{text}"\r\n')
            else:
                out.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--format", choices=["jsonl", "csv", "txt"], default="jsonl")
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)

    settings = Settings.from_environ()
    services = build_services(settings)
    if not services.registry.available:
        print(f"No models in {settings.model_dir}: run `make model`.", file=sys.stderr)
        return 2
    services.registry.get(args.model)  # load the model before timing
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"tickets.{args.format}"
        write_file(path, args.lines, args.format)
        started = time.perf_counter()
        outcome = classify_file(path, local_config(labels=LABELS, model=args.model), services)
        seconds = time.perf_counter() - started
    if outcome.summary is None:
        print(f"failed: {outcome.detail}", file=sys.stderr)
        return 1
    s = outcome.summary
    print(
        f"uploads: {s.records_read} {args.format} records, {s.classified} classified, model {s.model}, "
        f"batch {settings.uploads_batch_size}, part {settings.uploads_part_records}: "
        f"{s.records_read / seconds:.1f} records/s end to end ({seconds:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
