# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python e5.py
from common import *
from lab import *


def mix(labs):
    L = emb(labs) + emb(strip_affixes2(labs))
    return L / np.linalg.norm(L, axis=1, keepdims=True)


evaluate(lambda X, labs: cos(X, mix(labs)), "full+strip")


def bga(a):
    def g(X, labs):
        L = emb(strip_affixes2(labs))
        m, s = bg_stats(L)
        return cos(X, L) - a * m

    return g


for a in (0.25, 0.5):
    evaluate(bga(a), f"strip+bg{a}")
# temperature on strip
from labelwise.evaluation.calibration import fit_temperature

cal = []
for ds in sets:
    for w, labs in tz.panel(ds.name, ds.classes).items():
        cal.append((cos(X[ds.name], emb(strip_affixes2(labs))), ds.y))
print("T strip", fit_temperature(cal).temperature)
