"""A tiny, real Argos Translate package built on the spot (reusable by any test).

No Argos package can be downloaded here, so tests build one: a CTranslate2 Transformer
(2 layers, 2 heads, d_model 16) with random weights, a SentencePiece model trained on a few
lines, zipped the way the Argos index ships them (``<folder>/metadata.json``, ``model/``,
``sentencepiece.model``). It translates into garbage, deterministically: it proves the install,
load and decode path, not quality. Building one takes ≈ 0.1 s.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import sentencepiece
from ctranslate2.specs.model_spec import index_spec

D_MODEL = 16
FFN_DIM = 32

TRAINING_LINES = (
    "The United Nations will hold an online dialogue with people around the world.",
    "Good morning, everyone, and welcome to the meeting.",
    "Can you hear me now? The sound is much better.",
    "We will share the slides after the call.",
    "Las Naciones Unidas celebrarán un diálogo en línea.",
    "Buenos días a todos y bienvenidos a la reunión.",
    "Nous partagerons les diapositives après l'appel.",
    "Der Klang ist jetzt viel besser, danke schön.",
    "Numbers 0123456789 and punctuation: ,.;!?¿¡'\"()-",
    "quick brown fox jumps over the lazy dog while zebras quietly vex",
)


def _weight_shape(name: str, vocab_size: int) -> tuple[int, ...]:
    d, ff = D_MODEL, FFN_DIM
    suffixes: list[tuple[str, tuple[int, ...]]] = [
        ("embeddings/weight", (vocab_size, d)),
        ("embeddings_0/weight", (vocab_size, d)),
        ("projection/weight", (vocab_size, d)),
        ("layer_norm/gamma", (d,)),
        ("layer_norm/beta", (d,)),
        ("self_attention/linear_0/weight", (3 * d, d)),
        ("self_attention/linear_1/weight", (d, d)),
        ("/attention/linear_0/weight", (d, d)),
        ("/attention/linear_1/weight", (2 * d, d)),
        ("/attention/linear_2/weight", (d, d)),
        ("ffn/linear_0/weight", (ff, d)),
        ("ffn/linear_1/weight", (d, ff)),
    ]
    for suffix, shape in suffixes:
        if name.endswith(suffix):
            return shape
    raise AssertionError(f"unexpected CTranslate2 variable {name} (did its spec change?)")


def train_sentencepiece(workdir: Path, *, vocab_size: int = 80) -> Path:
    """A SentencePiece model trained on :data:`TRAINING_LINES`; returns its path."""
    prefix = workdir / "spm"
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_LINES),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def build_ctranslate2_model(model_dir: Path, vocabulary: list[str], *, seed: int = 0) -> None:
    """A 2-layer, 2-head Transformer with random weights saved as a CTranslate2 model."""
    spec = ctranslate2.specs.TransformerSpec.from_config(2, 2)
    rng = np.random.default_rng(seed)
    for name, value in spec.variables(ordered=True):
        if value is not None:
            continue  # flags and scalars the spec already set
        shape = _weight_shape(name, len(vocabulary))
        if name.endswith("gamma"):
            weight = np.ones(shape, dtype=np.float32)
        elif name.endswith("beta"):
            weight = np.zeros(shape, dtype=np.float32)
        else:
            weight = rng.normal(0.0, 0.5, size=shape).astype(np.float32)
        scope, _, attr = name.rpartition("/")
        setattr(index_spec(spec, scope), attr, weight)
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.validate()
    model_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(model_dir))


def build_tiny_argos_package(
    out_dir: Path,
    *,
    from_code: str = "en",
    to_code: str = "de",
    seed: int = 0,
    folder: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``translate-<from>_<to>.argosmodel`` into ``out_dir``; returns its path.

    ``metadata`` entries override or extend the default ``metadata.json``.
    """
    folder = folder or f"translate-{from_code}_{to_code}-1_0"
    archive_path = out_dir / f"translate-{from_code}_{to_code}.argosmodel"
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        sp_path = train_sentencepiece(work)
        processor = sentencepiece.SentencePieceProcessor(model_file=str(sp_path))
        vocabulary = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        build_ctranslate2_model(work / "model", vocabulary, seed=seed)
        meta: dict[str, Any] = {
            "package_version": "1.0",
            "argos_version": "1.0",
            "from_code": from_code,
            "from_name": from_code,
            "to_code": to_code,
            "to_name": to_code,
            "type": "translate",
            **(metadata or {}),
        }
        with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{folder}/metadata.json", json.dumps(meta))
            archive.write(sp_path, f"{folder}/sentencepiece.model")
            for path in sorted((work / "model").iterdir()):
                archive.write(path, f"{folder}/model/{path.name}")
    return archive_path
