"""Tiny random-weight models with a word-level tokenizer, for fast tests of the graph builder and the
runtime (one word = one token, so token arithmetic in tests is exact)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.embedding.onnx_embedder import MODEL_FILE, TOKENIZER_FILE
from labelwise.modelbuild.weights import EncoderConfig, EncoderWeights, random_weights

Family = Literal["xlm-roberta", "bert"]
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3
WORDS = (*(f"w{i}" for i in range(40)), "query:", "passage:", "hello", "world", "cat", "dog")


def tiny_config(
    family: Family = "bert",
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    ffn: int = 128,
    max_positions: int = 64,
) -> EncoderConfig:
    return EncoderConfig(
        family=family,
        layers=layers,
        hidden=hidden,
        heads=heads,
        ffn=ffn,
        vocab=len(SPECIALS) + len(WORDS),
        max_positions=max_positions,
        eps=1e-12,
        position_offset=2 if family == "xlm-roberta" else 0,
    )


def tiny_tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return str(tok.to_str())


def write_tiny_model(
    model_dir: Path,
    *,
    window: int = 8,
    max_input_tokens: int = 20,
    prefixes: Prefixes | None = None,
    quantize: bool = True,
    seed: int = 0,
    family: Family = "bert",
) -> tuple[EncoderConfig, EncoderWeights]:
    """Write ``model.onnx`` (+ ``model.float.onnx``), ``tokenizer.json`` and ``manifest.json``."""
    import onnx

    from labelwise.modelbuild.graph import build_graph

    cfg = tiny_config(family)
    w = random_weights(cfg, seed=seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    float_path = model_dir / "model.float.onnx"
    onnx.save(build_graph(cfg, w), str(float_path))
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            float_path,
            model_dir / MODEL_FILE,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    else:
        (model_dir / MODEL_FILE).write_bytes(float_path.read_bytes())
    (model_dir / TOKENIZER_FILE).write_text(tiny_tokenizer_json(), encoding="utf-8")
    ModelManifest(
        name="tiny",
        family=family,
        dimension=cfg.hidden,
        window=window,
        max_input_tokens=max_input_tokens,
        prefixes=prefixes or Prefixes(),
        cls_token_id=CLS_ID,
        sep_token_id=SEP_ID,
        pad_token_id=PAD_ID,
        license="test",
        source="random",
    ).save(model_dir)
    return cfg, w
