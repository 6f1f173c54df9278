# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python e2.py
from common import *
from lab import *


def bgc(f):
    def g(X, labs):
        L = f(labs)
        m, s = bg_stats(L)
        return cos(X, L) - m

    return g


def bgz(f):
    def g(X, labs):
        L = f(labs)
        m, s = bg_stats(L)
        return (cos(X, L) - m) / s

    return g


evaluate(bgc(emb), "bg")
evaluate(bgz(emb), "bgz")
evaluate(lambda X, labs: cos(X, emb(strip_affixes2(labs))), "strip")
evaluate(bgc(lambda l: emb(strip_affixes2(l))), "strip+bg")
evaluate(lambda X, labs: cos(X, ens(labs)), "ens")
evaluate(bgc(ens), "ens+bg")
evaluate(bgc(lambda l: ens(strip_affixes2(l))), "strip+ens+bg")
evaluate(lambda X, labs: cos(X, ens(strip_affixes2(labs))), "strip+ens")
print(
    strip_affixes2(
        ["The writer is unhappy with it and criticises it.", "The writer is happy with it and praises it."]
    ),
    strip_affixes2(["not spam review", "spam review"]),
    strip_affixes2(["This text is not spam.", "This text is spam."]),
    strip_affixes2(list(tz.JINA_LABELS)),
)
