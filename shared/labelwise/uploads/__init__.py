"""Bulk classification of uploaded files: ``uploads/<path>`` -> ``results/<path>.jsonl`` + summary.

- :mod:`.readers`: streaming ``.jsonl`` / ``.csv`` / ``.txt`` readers with line numbers and resumable
  byte positions;
- :mod:`.classifying`: configuration from object metadata or path, the uploader's key, and the
  zero-shot / few-shot plans built on :mod:`labelwise.classify`;
- :mod:`.jobs`: the runner (parts, checkpoints, idempotent outputs, time budget);
- :mod:`.ports` + adapters :mod:`.aws` (S3, SQS) and :mod:`.objects` (local directory, memory);
- :mod:`.local`: the same runner on a local file (``labelwise classify-file``).

See docs/uploads.md.
"""
