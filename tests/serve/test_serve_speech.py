"""Spoken questions: speech synthesised by Debian espeak-ng, recognised offline."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from medlens.errors import ConfigError, CorruptFileError
from medlens.serve.speech import (
    PocketSphinxTranscriber,
    load_transcriber,
    read_wav,
    resample,
    whisper_weights_present,
)

pytest.importorskip("pocketsphinx")
ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="Debian espeak-ng is not installed")

QUESTIONS = {
    "is there a fracture in the left femur": {"fracture", "left", "femur"},
    "is there a pneumothorax in the right lung": {"pneumothorax", "right", "lung"},
    "is the spleen enlarged": {"spleen", "enlarged"},
}


def speak(text: str, path: Path, voice: str = "en") -> bytes:
    subprocess.run([str(ESPEAK), "-v", voice, "-w", str(path), text], check=True)
    return path.read_bytes()


@needs_espeak
@pytest.mark.parametrize("voice", ["en", "en-us"])
def test_synthesised_questions_keep_their_key_words(tmp_path: Path, voice: str) -> None:
    transcriber = PocketSphinxTranscriber()
    for question, key_words in QUESTIONS.items():
        transcript = transcriber.transcribe(speak(question, tmp_path / "q.wav", voice))
        assert key_words <= set(transcript.text.split()), (question, transcript.text)
        assert 1.0 < transcript.duration_s < 5.0


@needs_espeak
def test_transcription_endpoint(serve: Callable[..., str], tmp_path: Path) -> None:
    url = serve()
    audio = speak("is there a fracture in the left femur", tmp_path / "q.wav")
    response = httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": ("q.wav", audio)}, timeout=60
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"fracture", "left", "femur"} <= set(body["text"].split())
    assert body["model"] == "pocketsphinx-en-us"
    not_wav = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("a.mp3", b"ID3...")})
    assert not_wav.status_code == 400 and "WAV" in not_wav.json()["error"]["message"]


def test_wav_reading_and_resampling(tmp_path: Path) -> None:
    rate = 22050
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        stereo = np.repeat((tone * 32767).astype("<i2")[:, None], 2, axis=1)
        writer.writeframes(stereo.tobytes())
    samples, got_rate = read_wav(path.read_bytes())
    assert got_rate == rate and samples.shape == (rate,)
    assert np.allclose(samples, tone, atol=1e-4)
    down = resample(samples, rate)
    assert down.size == 16000
    spectrum = np.abs(np.fft.rfft(down))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 s of audio: bin = Hz
    with pytest.raises(ConfigError, match="at most 0 s"):
        read_wav(path.read_bytes(), max_seconds=0.5)
    with pytest.raises(CorruptFileError, match="WAV"):
        read_wav(b"RIFF\x00\x00")


def test_whisper_is_used_only_when_its_weights_are_present(tmp_path: Path) -> None:
    assert not whisper_weights_present(None)
    assert not whisper_weights_present(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "whisper"}')
    assert not whisper_weights_present(tmp_path)  # a config without weights
    assert isinstance(load_transcriber(tmp_path), PocketSphinxTranscriber)
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert whisper_weights_present(tmp_path)
