"""Classification logic: zero-shot (label similarity) and few-shot (learned weights)."""
