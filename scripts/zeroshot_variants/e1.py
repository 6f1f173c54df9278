# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python e1.py
from common import *

evaluate(lambda X, labs: cos(X, emb(labs)), "base")
evaluate(lambda X, labs: cos(X, emb(labs, "passage: ")), "passage")
evaluate(lambda X, labs: cos(X, emb(labs, "")), "noprefix")
for lab in [["negative review", "positive review"], ["negative", "positive"]]:
    L = emb(lab)
    ds = sets[1]
    S = cos(X[ds.name], L)
    print(lab, S.mean(0), (S.argmax(1) == ds.y).mean(), np.corrcoef(S[:, 1] - S[:, 0], ds.y)[0, 1])
