# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python e4.py
from common import *
from lab import *

B = bgX()
mu = B.mean(0)
U, s, Vt = np.linalg.svd(B - mu, full_matrices=False)


def proj(k, center=True, label_center=True):
    V = Vt[:k]

    def f(Z, c):
        Z = Z - (mu if c else 0)
        return Z - (Z @ V.T) @ V if k else Z

    return f


for k in [0, 1, 2, 3, 5, 8, 12, 20]:
    f = proj(k)
    for lc in (True,):
        evaluate(lambda X, labs: cos(f(X, True), f(emb(labs), lc)), f"abtt{k}")
        evaluate(lambda X, labs: cos(f(X, True), f(emb(strip_affixes2(labs)), lc)), f"strip+abtt{k}")
