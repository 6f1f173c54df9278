"""``python -m tests.support.local_server_process DATA_DIR``: the local server in a process of its own.

The real local adapters (SQLite key and classifier stores under ``DATA_DIR``) and the real HTTP
server (:func:`labelwise.server.make_server`), over the hashing embedder, so a test can watch the
process from outside (its open files, its limits) without the int8 models. Prints the API key it
created and ``listening on <url>``, then serves until terminated.
"""

from __future__ import annotations

import sys
from pathlib import Path

from labelwise.embedding.registry import ModelRegistry
from labelwise.server import make_server
from labelwise.services import Services
from labelwise.storage import open_stores
from tests.support.fakes import HashingEmbedder, fake_model_settings


def main(data_dir: str) -> None:
    root = Path(data_dir)
    settings = fake_model_settings(root, quotas_off=True)
    store, keys = open_stores(settings)
    services = Services(
        settings=settings,
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
        store=store,
        keys=keys,
    )
    key, _ = keys.create("tenant-fd", "fd test")
    server = make_server(services, "127.0.0.1", 0)
    print(f"key {key}", flush=True)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1])
