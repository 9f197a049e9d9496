"""The torch Whisper encoder converted from CTranslate2 against faster-whisper's own encoder."""

import struct

import numpy as np
import pytest
import soundfile
import torch

from raymer.models.registry import resolve_model
from raymer.models.whisper_encoder import (
    ConversionError,
    encode,
    load_whisper_encoder,
    read_ct2_variables,
)
from raymer.models.whisper_input import log_mel


@pytest.fixture(scope="module")
def speech(piper_corpus) -> np.ndarray:
    audio, rate = soundfile.read(piper_corpus.parent / "joe" / "joe_00000.wav", dtype="float32")
    assert rate == 16_000
    return audio


@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
def test_converted_encoder_matches_faster_whisper(name, speech):
    from faster_whisper import WhisperModel

    model_dir = resolve_model(name)
    reference = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    encoder = load_whisper_encoder(model_dir)
    for n_frames in (3000, 800):  # stock 30 s window, and the 8 s 'fit' window of extraction
        mel = log_mel(reference.feature_extractor, speech, n_frames)[None]
        expected = np.asarray(reference.encode(mel), dtype=np.float32)
        with torch.no_grad():
            got = encode(encoder, torch.from_numpy(mel)).numpy()
        assert got.shape == expected.shape == (1, n_frames // 2, encoder.config.d_model)
        scale = np.abs(expected).max()
        # float32 both sides; what differs is the order of floating-point operations
        assert np.abs(got - expected).max() <= 1e-3 * scale, np.abs(got - expected).max()
        assert np.abs(got - expected).mean() < 1e-4 * scale
        if n_frames == 3000:  # at 30 s, encode() is transformers' own forward
            with torch.no_grad():
                stock = encoder(torch.from_numpy(mel)).last_hidden_state.numpy()
            np.testing.assert_allclose(got, stock, atol=1e-5)


def test_conversion_reads_shapes_and_splits_qkv():
    variables = read_ct2_variables(resolve_model("whisper-tiny.en") + "/model.bin")
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert int(variables["encoder/num_heads"]) == 6
    assert not any(name.startswith("decoder/") for name in variables)
    encoder = load_whisper_encoder(resolve_model("whisper-tiny.en"))
    fused = torch.from_numpy(
        variables["encoder/layer_3/self_attention/linear_0/weight"].astype(np.float32)
    )
    k_proj = encoder.layers[3].self_attn.k_proj.weight
    assert torch.equal(k_proj, fused[384:768]) and encoder.layers[3].self_attn.k_proj.bias is None


def test_not_a_whisper_model_is_refused(tmp_path):
    name = b"TransformerSpec\0"
    blob = struct.pack("<I", 6) + struct.pack("<H", len(name)) + name + struct.pack("<II", 1, 0)
    (tmp_path / "model.bin").write_bytes(blob)
    with pytest.raises(ConversionError, match="holds a TransformerSpec, not a Whisper model"):
        load_whisper_encoder(tmp_path)
    with pytest.raises(ConversionError, match="no model.bin"):
        load_whisper_encoder(tmp_path / "elsewhere")
