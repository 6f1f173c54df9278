# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python e3.py
from common import *
from lab import *

G = np.array(tz.JINA_GOLD)


def show(name, S):
    d = S[:, 0] - S[:, 1]
    order = np.argsort(-d)
    # best achievable with a shift
    best = max(((d > t).astype(int) == (G == 0)).sum() for t in np.concatenate([d - 1e-6, [d.max() + 1]]))
    print(
        f"{name:20s} argmax correct {(S.argmax(1) == G).sum()}  d={np.round(d, 3).tolist()} rank={(order + 1).tolist()} best-shift={best}"
    )


labs = list(tz.JINA_LABELS)
parts = [p.strip() for p in labs[0].split(",")]
show("base", cos(JX, emb(labs)))
show("bg", cos(JX, emb(labs)) - bg_stats(emb(labs))[0])
P = emb(parts)
F = emb(["fact"])
Sp = cos(JX, P)
show("parts-mean-vec", cos(JX, np.vstack([P.mean(0, keepdims=True), F])))
show("parts-mean-sim", np.c_[Sp.mean(1), cos(JX, F)])
show("parts-max-sim", np.c_[Sp.max(1), cos(JX, F)])
mP, _ = bg_stats(P)
mF, _ = bg_stats(F)
show("parts-mean-sim-bg", np.c_[(Sp - mP).mean(1), cos(JX, F)[:, 0] - mF])
show("parts-max-sim-bg", np.c_[(Sp - mP).max(1), cos(JX, F)[:, 0] - mF])
show("ens", cos(JX, ens(labs)))
show("ens-bg", cos(JX, ens(labs)) - bg_stats(ens(labs))[0])
Pe = ens(parts)
Fe = ens(["fact"])
show("parts-ens-mean-bg", np.c_[(cos(JX, Pe) - bg_stats(Pe)[0]).mean(1), cos(JX, Fe)[:, 0] - bg_stats(Fe)[0]])
for p in parts:
    print(p, np.round(cos(JX, emb([p]))[:, 0] - cos(JX, F)[:, 0], 3).tolist())
