# ruff: noqa
# Exploration scratch of issue 11 (not shipped): run from this folder with
# PYTHONPATH=../../shared ../../.venv/bin/python common.py
import sys, numpy as np

sys.path.insert(0, "" + str(__import__("pathlib").Path(__file__).resolve().parents[1]) + "")
import tune_zeroshot as tz
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.embedding.manifest import Prefixes
from labelwise.evaluation import datasets, fewshot as fs
from labelwise.evaluation.metrics import macro_f1
from labelwise.settings import Settings
from labelwise.classify.scoring import cosine_similarity as cos

settings = Settings.from_environ()
MODEL = "multilingual-e5-small"
md = settings.model_dir / MODEL
E = OnnxEmbedder.from_dir(md, intra_op_threads=2)
key = fs.model_cache_key(md)
cd = settings.cache_dir / "fewshot-embeddings"
sets = [datasets.load(n, settings.cache_dir, 1000) for n in tz.DEV_SETS]
X = {
    ds.name: fs.cached_embeddings(
        lambda t: E.embed(t, "input").vectors, list(ds.texts), cd, f"{key}-{ds.name}-input"
    )
    for ds in sets
}
JX = E.embed(list(tz.JINA_SENTENCES), "input").vectors
_c = {}


def emb(texts, prefix="query: "):
    miss = [t for t in texts if (prefix, t) not in _c]
    if miss:
        e = OnnxEmbedder(E._session, E._tokenizer, E.manifest.replace(prefixes=Prefixes(prefix, prefix)))
        for t, v in zip(miss, e.embed(miss, "label").vectors):
            _c[(prefix, t)] = v
    return np.stack([_c[(prefix, t)] for t in texts])


def evaluate(logits_fn, name, show=True):
    spreads = []
    out = {}
    for ds in sets:
        f = {
            w: macro_f1(ds.y, logits_fn(X[ds.name], labs).argmax(1))
            for w, labs in tz.panel(ds.name, ds.classes).items()
        }
        v = list(f.values())
        spreads.append(max(v) - min(v))
        out[ds.name] = f
        if show:
            print(
                f"{name:14s} {ds.name:18s} "
                + " ".join(f"{x:.2f}" for x in v)
                + f" | worst {min(v):.2f} spread {max(v) - min(v):.2f}"
            )
    S = logits_fn(JX, list(tz.JINA_LABELS))
    p = S.argmax(1)
    j = int((p == np.array(tz.JINA_GOLD)).sum())
    print(
        f"{name:14s} jina {j}/8 {p.tolist()}  max spread {max(spreads):.2f} mean worst {np.mean([min(o.values()) for o in out.values()]):.3f} mean {np.mean([np.mean(list(o.values())) for o in out.values()]):.3f}"
    )
    return out
