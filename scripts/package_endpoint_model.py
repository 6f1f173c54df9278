"""Package built model directories as a SageMaker model artifact (``model.tar.gz``).

SageMaker downloads ``ModelDataUrl`` (an S3 object) and unpacks it into ``/opt/ml/model`` before
starting the container, so the archive holds one directory per model at its root::

    model.tar.gz
      multilingual-e5-small/{model.onnx, model.onnx.data, tokenizer.json, manifest.json}
      efficientnet-lite0/{model.onnx, manifest.json, ...}

Build caches (``model.float.onnx``) are left out unless ``--include-float`` (the GPU can run the
float graph: ``--model-file model.float.onnx`` on the server). Upload the result and pass its S3 URL
as the stack's ``EndpointModelDataUrl``::

    python scripts/package_endpoint_model.py --out build/model.tar.gz
    aws s3 cp build/model.tar.gz s3://<bucket>/endpoint/model.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
from pathlib import Path

from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.settings import Settings

FLOAT_FILE = "model.float.onnx"


def model_dirs(root: Path, names: list[str] | None) -> list[Path]:
    # Hidden directories are builds in progress (``.<name>.building``), never shipped.
    found = sorted(p.parent for p in root.glob(f"*/{MANIFEST_FILE}") if not p.parent.name.startswith("."))
    if names:
        by_name = {d.name: d for d in found}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise SystemExit(f"not built under {root}: {', '.join(missing)}")
        found = [by_name[n] for n in names]
    if not found:
        raise SystemExit(f"no built models under {root} (run `make model`)")
    return found


def package(
    root: Path, out: Path, names: list[str] | None = None, include_float: bool = False
) -> dict[str, object]:
    """Write ``out`` (deterministic: sorted entries, fixed mtimes/owners); returns a summary."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Path, str]] = []
    for directory in model_dirs(root, names):
        for path in sorted(directory.rglob("*")):
            if path.is_dir() or (path.name == FLOAT_FILE and not include_float):
                continue
            files.append((path, f"{directory.name}/{path.relative_to(directory).as_posix()}"))

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o644
        return info

    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        for path, arcname in files:
            tar.add(path.resolve(), arcname=arcname, filter=normalise)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {
        "artifact": str(out),
        "bytes": out.stat().st_size,
        "sha256": digest,
        "models": sorted({a.split("/", 1)[0] for _, a in files}),
        "files": [a for _, a in files],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="default: Settings.model_dir")
    parser.add_argument("--out", type=Path, default=Path("build/model.tar.gz"))
    parser.add_argument("--model", action="append", dest="models", help="only these models (repeatable)")
    parser.add_argument("--include-float", action="store_true", help=f"also ship {FLOAT_FILE} when built")
    args = parser.parse_args(argv)
    root = args.model_dir or Settings.from_environ().model_dir
    print(json.dumps(package(root, args.out, args.models, args.include_float), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
