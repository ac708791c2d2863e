"""The int8 encoder against the fp32 one on real text, and the setting that picks between them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kernel.settings import SettingsError, load_settings
from rag.services import make_embedder

GATE = Path(__file__).resolve().parents[1] / "data" / "gate" / "documents.jsonl"
# Measured on 48 SciFact abstracts (bench/encoder.py): median 0.9994, lowest 0.9992. The file's weights are int8
# and its arithmetic fp32, so the vectors differ by the rounding of the weights only: a bound well under that
# measurement still fails for a wrong tokenizer, pooling or normalisation (those give 0.3-0.9).
MIN_COSINE = 0.995


def real_sentences() -> list[str]:
    with GATE.open() as fh:
        texts = [json.loads(line)["text"] for line in fh][:4]
    return [s for t in texts for s in t.split(" . ")[:3] if len(s.split()) >= 5]


def test_int8_vectors_agree_with_fp32_on_real_sentences() -> None:
    sentences = real_sentences()
    assert len(sentences) >= 8
    fp32 = make_embedder(load_settings(embedding={"encoder": "pytorch"}))
    int8 = make_embedder(load_settings(embedding={"encoder": "int8"}))
    cosines = (np.asarray(fp32.embed_documents(sentences)) * np.asarray(int8.embed_documents(sentences))).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, cosines
    assert fp32.count_tokens(sentences) == int8.count_tokens(sentences)  # the same tokenizer and window


def test_the_setting_switches_the_encoder_and_its_model_id() -> None:
    from ingestion.embed import BUNDLED_MODEL_ID, SentenceTransformerEmbedder
    from ingestion.embed_onnx import INT8_MODEL_ID, OnnxInt8Embedder

    int8 = make_embedder(load_settings(embedding={"encoder": "int8"}))
    assert isinstance(int8, OnnxInt8Embedder) and int8.model_id == INT8_MODEL_ID
    fp32 = make_embedder(load_settings(embedding={"encoder": "pytorch"}))
    assert isinstance(fp32, SentenceTransformerEmbedder) and fp32.model_id == BUNDLED_MODEL_ID


def test_a_bad_encoder_name_is_refused_with_the_names_it_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBEDDING__ENCODER", "int4")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "RAG_EMBEDDING__ENCODER" in message and "'int8'" in message and "'pytorch'" in message, message


def test_int8_with_a_model_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RAG_EMBEDDING__ENCODER=pytorch"):
        load_settings(embedding={"encoder": "int8", "model": str(tmp_path)})
    # A model directory without an explicit encoder runs on PyTorch, as before the setting existed.
    assert load_settings(embedding={"model": str(tmp_path)}).embedding.model == str(tmp_path)
