"""Offline speech recognition of spoken commands with pocketsphinx (no ROS here).

Audio is 16 kHz mono 16-bit PCM (WAV files of any rate, width or channel count are converted).
Utterances are found with pocketsphinx's voice activity endpointer and decoded with its US English
acoustic model (shipped inside the ``pocketsphinx`` wheel: nothing is downloaded), against either

- ``grammar``: the command grammar of :mod:`refseg_node.speech.grammar` (expressions shaped like
  the synthetic world's), built from a checkpoint's vocabulary and the command parser's verbs,
- ``words``: the same with any sequence of vocabulary words as the expression, or
- ``general``: pocketsphinx's general US English language model.

An :class:`Utterance`'s ``confidence`` is the mean posterior probability of its words (0..1) from
the decoder's word lattice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

import refseg_model
from refseg_model.checkpoint import CheckpointError, load_checkpoint
from refseg_node.speech.grammar import GRAMMAR_NAME, CommandGrammar, command_grammar

SAMPLE_RATE = 16000
LANGUAGE_MODELS = ("grammar", "words", "general")
# The grammar shape of each language model that is a grammar.
_SHAPES = {"grammar": "command", "words": "words"}
# Words of a pocketsphinx segmentation that are no words: sentence marks, silence, fillers.
_NON_WORDS = ("<s>", "</s>", "<sil>", "(NULL)")


class SpeechError(RuntimeError):
    """Audio that cannot be read, or a recognizer that cannot be set up."""


@dataclass(frozen=True)
class Utterance:
    """One decoded stretch of speech."""

    text: str                # the recognised words ("" when none)
    confidence: float        # mean word posterior probability, 0..1 (0 when no words)
    start: float             # seconds from the start of the audio
    end: float
    decode_seconds: float    # time the decoder took for it

    @property
    def duration(self) -> float:
        """Return the utterance's length in seconds."""
        return self.end - self.start


def read_wav(path: str | Path) -> np.ndarray:
    """Read a WAV file as 16 kHz mono int16 samples (mixed down and resampled as needed)."""
    path = Path(path)
    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError, EOFError) as err:
        raise SpeechError(f"cannot read WAV file {path}: {err}") from None
    if data.size == 0:
        raise SpeechError(f"WAV file {path} holds no samples")
    if data.dtype.kind == "f":
        samples = data.astype(np.float64)
    elif data.dtype == np.uint8:
        samples = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        samples = data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    else:
        raise SpeechError(f"WAV file {path}: unsupported sample type {data.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        if rate < 8000:
            raise SpeechError(f"WAV file {path}: sample rate {rate} Hz is too low for speech "
                              f"(need at least 8000 Hz, best {SAMPLE_RATE})")
        g = gcd(int(rate), SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // g, int(rate) // g)
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def wav_files(source: str | Path) -> list[Path]:
    """Return the WAV file ``source`` names, or the ``*.wav`` files of a folder, sorted."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
        if not files:
            raise SpeechError(f"no .wav files in folder {path}")
        return files
    if path.is_file():
        return [path]
    raise SpeechError(f"audio source not found: {path} (a .wav file, a folder of them, or "
                      "'microphone')")


def pocketsphinx_module():
    """Import pocketsphinx, or raise :class:`SpeechError` saying how to install it."""
    try:
        import pocketsphinx
    except ImportError as err:
        raise SpeechError(f"pocketsphinx is not installed ({err}); pip install "
                          "pocketsphinx (see requirements/base.txt)") from None
    return pocketsphinx


class Recognizer:
    """A pocketsphinx decoder for spoken commands (one utterance at a time)."""

    def __init__(self, vocabulary: Iterable[str] | None = None, language_model: str = "grammar",
                 with_fillers: bool = True, options: dict | None = None):
        """Set up a decoder; ``vocabulary`` (a checkpoint's token list) is needed for ``grammar``.

        ``options`` are further pocketsphinx configuration values (``{"beam": 1e-60}``).
        """
        if language_model not in LANGUAGE_MODELS:
            raise SpeechError(f"language_model must be one of {LANGUAGE_MODELS}, "
                              f"got {language_model!r}")
        ps = pocketsphinx_module()
        self.language_model = language_model
        self.grammar: CommandGrammar | None = None
        self.composed: list[str] = []     # words added to the dictionary as compounds
        config = {"loglevel": "FATAL", **(options or {})}
        try:
            self._decoder = ps.Decoder(**config)
        except (RuntimeError, ValueError) as err:
            raise SpeechError(f"cannot start pocketsphinx: {err}") from None
        if language_model in _SHAPES:
            if vocabulary is None:
                raise SpeechError("the grammar needs a vocabulary (a checkpoint's)")
            self.grammar = command_grammar(vocabulary, self.pronounceable, with_fillers,
                                           _SHAPES[language_model])
            try:
                g = self.grammar
                fsg = self._decoder.create_fsg(GRAMMAR_NAME, g.start, g.final, g.transitions)
                self._decoder.add_fsg(GRAMMAR_NAME, fsg)
                self._decoder.activate_search(GRAMMAR_NAME)
            except (RuntimeError, ValueError) as err:
                raise SpeechError(f"pocketsphinx refused the command grammar: {err}") from None
        self._logmath = self._decoder.get_logmath()

    def pronounceable(self, word: str) -> bool:
        """Say whether the pronunciation dictionary has ``word``, adding compounds it lacks.

        A word the dictionary lacks that is two dictionary words run together ("leftmost" =
        "left" + "most") is added with their pronunciations joined (listed in ``composed``).
        """
        if self._decoder.lookup_word(word) is not None:
            return True
        for cut in range(2, len(word) - 1):
            first = self._decoder.lookup_word(word[:cut])
            second = self._decoder.lookup_word(word[cut:])
            if first and second:
                try:
                    self._decoder.add_word(word, f"{first} {second}", True)
                except RuntimeError:
                    return False
                self.composed.append(word)
                return True
        return False

    def decode(self, samples: np.ndarray, start: float = 0.0) -> Utterance:
        """Decode ``samples`` (16 kHz mono int16) as one whole utterance."""
        pcm = np.ascontiguousarray(samples, dtype=np.int16).tobytes()
        began = time.perf_counter()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        posteriors = [s.prob for s in self._decoder.seg()
                      if s.word not in _NON_WORDS and not s.word.startswith("[")] if hyp else []
        elapsed = time.perf_counter() - began
        text = " ".join(hyp.hypstr.split()) if hyp else ""
        confidence = float(np.clip(np.mean(posteriors), 0.0, 1.0)) if posteriors and text else 0.0
        return Utterance(text, confidence, start, start + len(samples) / SAMPLE_RATE, elapsed)


class UtteranceDetector:
    """Cut a stream of 16 kHz int16 audio into utterances with pocketsphinx's endpointer."""

    def __init__(self, window: float = 0.3, ratio: float = 0.9, vad_mode: int = 2):
        """Set up the endpointer: ``window`` seconds, ``ratio`` of it voiced to switch state."""
        ps = pocketsphinx_module()
        try:
            self._endpointer = ps.Endpointer(window=window, ratio=ratio, vad_mode=vad_mode,
                                             sample_rate=SAMPLE_RATE)
        except ValueError as err:
            raise SpeechError(f"bad endpointer settings: {err}") from None
        self.frame_samples = self._endpointer.frame_bytes // 2
        self._pending = np.zeros(0, dtype=np.int16)
        self._speech: list[np.ndarray] = []
        self._start = 0.0

    def feed(self, samples: np.ndarray) -> Iterator[tuple[float, np.ndarray]]:
        """Take more audio; yield ``(start seconds, samples)`` of every utterance it ended."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        n = self.frame_samples
        full = len(data) // n * n
        self._pending = data[full:]
        for offset in range(0, full, n):
            yield from self._frame(data[offset:offset + n], last=False)

    def finish(self) -> Iterator[tuple[float, np.ndarray]]:
        """End the stream: yield the utterance still open, if any."""
        tail, self._pending = self._pending, np.zeros(0, dtype=np.int16)
        yield from self._frame(tail, last=True)

    def _frame(self, frame: np.ndarray, last: bool) -> Iterator[tuple[float, np.ndarray]]:
        was_in_speech = self._endpointer.in_speech
        pcm = frame.tobytes()
        speech = self._endpointer.end_stream(pcm) if last else self._endpointer.process(pcm)
        if speech is not None:
            if not was_in_speech:
                self._start = self._endpointer.speech_start
            self._speech.append(np.frombuffer(speech, dtype=np.int16))
            if not self._endpointer.in_speech:
                yield self._start, np.concatenate(self._speech)
                self._speech = []


def utterances_of(samples: np.ndarray, detector: UtteranceDetector | None = None
                  ) -> list[tuple[float, np.ndarray]]:
    """Return the ``(start seconds, samples)`` utterances of a whole recording."""
    detector = detector or UtteranceDetector()
    found = list(detector.feed(samples))
    found.extend(detector.finish())
    return found


def checkpoint_vocabulary(path: str | Path | None = None) -> list[str]:
    """Return the vocabulary of a refseg checkpoint (default: the shipped one)."""
    path = Path(path).expanduser() if path else refseg_model.default_checkpoint_path()
    try:
        return list(load_checkpoint(path)["vocabulary"])
    except CheckpointError as err:
        raise SpeechError(f"cannot read the vocabulary of {path}: {err}") from None


def word_errors(reference: str, hypothesis: str) -> int:
    """Return the word edit distance (substitutions + deletions + insertions)."""
    ref, hyp = reference.lower().split(), hypothesis.lower().split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]
