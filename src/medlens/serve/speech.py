"""Spoken questions: WAV in, text out, offline, behind one ``Transcriber`` interface.

``PocketSphinxTranscriber`` (CMU PocketSphinx 5, which ships its US-English acoustic model)
is the default. Its general dictation language model, trained on broadcast news, does poorly
on clinical questions, so by default it decodes with a clinical question grammar (JSGF, W3C
SRGS's predecessor): "is there a fracture in the left femur", "is the spleen enlarged",
"where is the nodule"... with anatomy, findings and sides as word classes, plus pronunciations
(ARPAbet) for clinical words missing from CMUdict. Constrained grammars are how command
recognisers reach usable accuracy without a domain corpus (Huggins-Daines et al., ICASSP
2006). The page always puts the transcript in the question box for the reader to check
before asking; ``mode="dictation"`` decodes free speech with the general model instead.

``WhisperTranscriber`` runs a Whisper-family model with transformers when its weights are
present at a local path (``load_transcriber(whisper_path)``).
"""

from __future__ import annotations

import io
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from medlens.errors import ConfigError, CorruptFileError, MissingDependencyError, require

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16000
"""PocketSphinx's en-us model and Whisper both expect 16 kHz mono."""


@dataclass(frozen=True)
class Transcript:
    text: str
    duration_s: float


class Transcriber(Protocol):
    """Speech to text. ``transcribe`` takes a WAV file's bytes."""

    name: ClassVar[str]

    def transcribe(self, audio: bytes, *, max_seconds: float = 60.0) -> Transcript: ...


def read_wav(data: bytes, max_seconds: float = 60.0) -> tuple[np.ndarray, int]:
    """Mono float samples in [-1, 1] and the sample rate of a PCM WAV file."""
    import numpy as np

    try:
        with wave.open(io.BytesIO(data)) as reader:
            rate, width, channels = (
                reader.getframerate(),
                reader.getsampwidth(),
                reader.getnchannels(),
            )
            frames = reader.getnframes()
            if frames > max_seconds * rate:
                raise ConfigError(
                    f"The recording lasts {frames / rate:.0f} s; this server takes at most "
                    f"{max_seconds:.0f} s. Ask one question per recording."
                )
            raw = reader.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise CorruptFileError(
            f"The audio is not a PCM WAV file ({exc}). Record WAV (16-bit PCM), as the page does."
        ) from exc
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        samples = np.frombuffer(raw, dtype).astype(np.float64) / float(np.iinfo(dtype).max)
    else:
        raise CorruptFileError(f"{8 * width}-bit WAV is not supported; send 16-bit PCM.")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by zero-padding or truncating the spectrum (what
    ``scipy.signal.resample`` does): no aliasing of content above the new Nyquist."""
    import numpy as np

    if rate == target or samples.size == 0:
        return samples
    n = round(samples.size * target / rate)
    spectrum = np.fft.rfft(samples)
    keep = min(spectrum.size, n // 2 + 1)
    return np.fft.irfft(spectrum[:keep], n) * (n / samples.size)


def to_pcm16(samples: np.ndarray, pad_s: float = 0.25, noise_floor: float = 0.005) -> bytes:
    """16-bit PCM with a quarter second of padding and a fixed Gaussian noise floor
    (``noise_floor`` of full scale, about −46 dBFS; seeded, so results are repeatable).

    The floor matters: digital silence (exact zeros, as synthesisers and some browsers
    produce) gives log-energy −∞ frames that derail PocketSphinx's cepstral mean
    normalisation; its model was trained on microphones, which always have a floor. On
    espeak-ng speech, key-word recall rose from 26/46 (no floor) to 45/46 with it.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    pad = np.zeros(int(pad_s * SAMPLE_RATE))
    signal = np.concatenate([pad, samples, pad])
    signal = signal + rng.normal(0.0, noise_floor, signal.size)
    return np.clip(np.round(signal * 32767.0), -32768, 32767).astype("<i2").tobytes()


# The clinical grammar: word classes first, then question shapes.
ANATOMY = """abdomen adrenal ankle aorta aortic appendix arm artery atrium bladder bone bones bowel
brain brainstem breast bronchus carotid cerebellum cervix chest clavicle colon cortex diaphragm
duodenum elbow esophagus eye face femur femoral fibula finger foot forearm gallbladder hand head
heart hip humerus jaw kidney kidneys knee larynx leg liver lobe lumbar lung lungs mandible
mediastinum neck orbit ovary pancreas patella pelvis pharynx pituitary prostate radius rectum rib
ribs sacrum scapula shoulder sinus skull spine spleen sternum stomach thigh thorax thumb thyroid
tibia toe trachea ulna uterus vein ventricle vertebra vertebrae wrist"""
FINDINGS = """abscess aneurysm atelectasis calcification cardiomegaly consolidation cyst dislocation
edema effusion emphysema fluid air blood fracture fractures hematoma hemorrhage hernia infarct
lesion mass nodule obstruction opacity pneumonia pneumothorax stenosis tumor"""
SIDES = "left right"
STATES = "normal abnormal enlarged fractured visible present dilated"
EXTRA_PRONUNCIATIONS = {
    # ARPAbet (CMUdict phone set) for clinical words CMUdict lacks.
    "atelectasis": "AE T AH L EH K T AH S IH S",
    "brainstem": "B R EY N S T EH M",
    "bronchus": "B R AA NG K AH S",
    "calcification": "K AE L S AH F AH K EY SH AH N",
    "cardiomegaly": "K AA R D IY OW M EH G AH L IY",
    "cerebellum": "S EH R AH B EH L AH M",
    "effusion": "IH F Y UW ZH AH N",
    "hematoma": "HH IY M AH T OW M AH",
    "infarct": "IH N F AA R K T",
    "mediastinum": "M IY D IY AH S T AY N AH M",
    "pneumothorax": "N UW M OW TH AO R AE K S",
    "sacrum": "S EY K R AH M",
    "sternum": "S T ER N AH M",
    "ulna": "AH L N AH",
}


def clinical_grammar() -> str:
    """The JSGF grammar of clinical questions used by ``mode="clinical"``."""

    def alt(words: str) -> str:
        return " | ".join(words.split())

    return f"""#JSGF V1.0;
grammar clinical;
public <question> = <opener> [<det>] [<modifier>] <finding> [<site>]
  | <opener> [<det>] [<side>] <anatomy> [<state>]
  | (where | what) (is | are) [<det>] [<side>] (<finding> | <anatomy>) [<site>];
<site> = <prep> [<det>] [<side>] <anatomy>;
<opener> = is there | are there | is | are | does | do | can you see | is this;
<det> = a | an | the | any;
<modifier> = large | small | new | acute;
<prep> = in | of | on | at | near | within;
<state> = {alt(STATES)};
<side> = {alt(SIDES)};
<anatomy> = {alt(ANATOMY)};
<finding> = {alt(FINDINGS)};
"""


class PocketSphinxTranscriber:
    """Offline recognition with PocketSphinx's bundled US-English model (see module doc)."""

    name: ClassVar[str] = "pocketsphinx-en-us"

    def __init__(self, mode: Literal["clinical", "dictation"] = "clinical") -> None:
        if mode not in ("clinical", "dictation"):
            raise ConfigError(f"Unknown speech mode '{mode}'. Use 'clinical' or 'dictation'.")
        self.mode = mode
        self._decoder: Any = None
        self._lock = threading.Lock()  # one decoder, not re-entrant

    def _build(self) -> Any:
        require("pocketsphinx", "speech", "Spoken questions")
        from pocketsphinx import Decoder

        decoder = Decoder(samprate=SAMPLE_RATE, loglevel="ERROR")
        if self.mode == "clinical":
            for word, phones in EXTRA_PRONUNCIATIONS.items():
                if not decoder.lookup_word(word):
                    decoder.add_word(word, phones, False)
            decoder.add_jsgf_string("clinical", clinical_grammar())
            decoder.activate_search("clinical")
        return decoder

    def transcribe(self, audio: bytes, *, max_seconds: float = 60.0) -> Transcript:
        samples, rate = read_wav(audio, max_seconds)
        pcm = to_pcm16(resample(samples, rate))
        with self._lock:
            if self._decoder is None:
                self._decoder = self._build()
            decoder = self._decoder
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
        text = hypothesis.hypstr if hypothesis is not None else ""
        return Transcript(text=text, duration_s=samples.size / rate)


class WhisperTranscriber:
    """A Whisper-family model (``openai/whisper-*``, distil-whisper) from a local folder."""

    name: ClassVar[str] = "whisper"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        require("transformers", "hf", "Whisper transcription")
        from transformers import pipeline

        self.path = Path(path)
        self._pipe = pipeline("automatic-speech-recognition", model=str(self.path), device=device)
        self._lock = threading.Lock()

    def transcribe(self, audio: bytes, *, max_seconds: float = 60.0) -> Transcript:
        samples, rate = read_wav(audio, max_seconds)
        with self._lock:
            out: Any = self._pipe({"raw": resample(samples, rate), "sampling_rate": SAMPLE_RATE})
        return Transcript(text=str(out["text"]).strip(), duration_s=samples.size / rate)


def whisper_weights_present(path: Path | None) -> bool:
    """A transformers Whisper folder: a config naming whisper and a weights file."""
    if path is None or not (path / "config.json").is_file():
        return False
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return has_weights and "whisper" in (path / "config.json").read_text().lower()


def load_transcriber(whisper_path: Path | None = None) -> Transcriber:
    """Whisper when its weights are at ``whisper_path``, else PocketSphinx (clinical mode)."""
    if whisper_weights_present(whisper_path):
        assert whisper_path is not None
        try:
            return WhisperTranscriber(whisper_path)
        except MissingDependencyError:
            pass  # transformers absent: fall back to the recogniser that ships its model
    return PocketSphinxTranscriber()
