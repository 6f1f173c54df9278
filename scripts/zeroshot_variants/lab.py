# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python lab.py
from pathlib import Path

HERE = Path(__file__).resolve().parent
import re, numpy as np
from common import emb, cos

BG = [l.strip() for f in (str(HERE / "bg_en.txt"), str(HERE / "bg_xx.txt")) for l in open(f) if l.strip()]
_bgX = {}


def bgX(prefix="query: "):
    if prefix not in _bgX:
        from common import E

        _bgX[prefix] = E.embed(BG, "input").vectors
    return _bgX[prefix]


def words(s):
    return s.split()


def norm_w(w):
    return re.sub(r"[^\w]", "", w.lower())


def strip_affixes(labels):
    if len(labels) < 2:
        return list(labels)
    ws = [words(l) for l in labels]
    # common prefix
    p = 0
    while all(len(w) > p for w in ws) and len({norm_w(w[p]) for w in ws}) == 1:
        p += 1
    s = 0
    while all(len(w) > p + s for w in ws) and len({norm_w(w[-1 - s]) for w in ws}) == 1:
        s += 1
    out = []
    for w in ws:
        core = w[p : len(w) - s]
        out.append(" ".join(core))
    if any(not re.sub(r"[^\w]", "", o) for o in out):
        # back off: strip only suffix, then only prefix
        return list(labels)
    return [re.sub(r"[\s.,;:!?]+$", "", o) for o in out]


def strip_affixes2(labels):
    """Strip common prefix / suffix words, each only as far as every label stays non-empty."""
    if len(labels) < 2:
        return list(labels)
    ws = [words(l) for l in labels]

    def common_prefix(ws):
        p = 0
        while all(len(w) > p + 1 for w in ws) and len({norm_w(w[p]) for w in ws}) == 1:
            p += 1
        return p

    p = common_prefix(ws)
    ws = [w[p:] for w in ws]
    s = common_prefix([w[::-1] for w in ws])
    ws = [w[: len(w) - s] for w in ws]
    out = [re.sub(r"[\s.,;:!?]+$", "", " ".join(w)) for w in ws]
    return [o if o else l for o, l in zip(out, labels)]


TEMPLATES = ["{}", "This text is {}.", "This is about {}.", "{}."]


def ens(labels, templates=TEMPLATES, prefix="query: "):
    L = np.mean([emb([t.format(l) for l in labels], prefix) for t in templates], 0)
    return L / np.linalg.norm(L, axis=1, keepdims=True)


def bg_stats(L, prefix="query: "):
    S = cos(bgX(prefix), L)
    return S.mean(0), S.std(0)
