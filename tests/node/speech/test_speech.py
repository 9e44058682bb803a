"""Spoken commands: the grammar, WAV reading, utterance detection and decoding of the fixtures.

The fixtures (``tests/fixtures/speech``) are commands said by espeak-ng in two voices, written by
``make_fixtures.py`` with their text in ``transcripts.tsv``. Decoding runs the real pocketsphinx
decoder with the grammar built from the shipped checkpoint's vocabulary.
"""

import csv
import subprocess
import sys

import numpy as np
import pytest

from refseg_node.language.command_parser import command_phrases, parse_command
from refseg_node.speech.grammar import GrammarError, command_grammar, expression_words
from tests.harness import REPO

pytest.importorskip("pocketsphinx")

from refseg_node.speech.recognizer import (  # noqa: E402
    SAMPLE_RATE,
    Recognizer,
    SpeechError,
    checkpoint_vocabulary,
    read_wav,
    utterances_of,
    wav_files,
    word_errors,
)

FIXTURES = REPO / "tests" / "fixtures" / "speech"
TRANSCRIPTS = {row["file"]: row["text"] for row in csv.DictReader(
    open(FIXTURES / "transcripts.tsv", encoding="utf-8"), delimiter="\t")}


@pytest.fixture(scope="module")
def vocabulary():
    return checkpoint_vocabulary()


@pytest.fixture(scope="module")
def grammar_recognizer(vocabulary):
    return Recognizer(vocabulary, "grammar")


def test_fixtures_are_16khz_mono_and_listed_with_their_text():
    from scipy.io import wavfile

    files = wav_files(FIXTURES)
    assert {f.name for f in files} == set(TRANSCRIPTS) and len(files) >= 16
    voices = {name.split("_")[0] for name in TRANSCRIPTS}
    assert len(voices) >= 2
    for path in files:
        rate, data = wavfile.read(path)
        assert rate == SAMPLE_RATE and data.dtype == np.int16 and data.ndim == 1
        assert 1.0 < len(data) / rate < 6.0


def test_grammar_holds_the_vocabulary_and_the_parsers_verbs(vocabulary, grammar_recognizer):
    grammar = grammar_recognizer.grammar
    words = set(grammar.words)
    assert {"cup", "jar", "red", "left", "table"} <= words
    assert not words & {"<pad>", "<unk>", "<go>", "<eos>"}
    assert {"pick up", "grab", "hand me"} <= set(grammar.verbs)
    from refseg_model.synth.expressions import COMMANDS, STUFF_COMMANDS

    # The parser's verbs and the generator's ("look at the wall": the model knows it).
    assert set(grammar.verbs) <= set(command_phrases().verbs) | set(COMMANDS + STUFF_COMMANDS)
    # Every vocabulary word is either in the grammar or reported as not pronounceable.
    plain = {w for w in vocabulary if w.isalpha()}
    assert words | set(grammar.unpronounceable) == plain
    for text in TRANSCRIPTS.values():
        assert grammar.accepts(text), text
    assert grammar.accepts("could you please pick up the red cup on the left please")
    assert not grammar.accepts("pick up the giraffe")
    assert not grammar.accepts("please the cup")     # politeness only before a verb
    assert not grammar.accepts("")


def test_command_grammar_accepts_what_the_synthetic_world_says(grammar_recognizer):
    """Every expression the generator writes (with and without a command verb) is accepted."""
    from refseg_model.synth.expressions import COMMANDS, STUFF_COMMANDS
    from refseg_model.synth.scene import generate_scene

    grammar = grammar_recognizer.grammar
    assert grammar.shape == "command" and grammar.unclassified == ()
    expressions = {e for seed in range(25) for region in generate_scene(seed, 160, 120).regions
                   for e in region.expressions}
    assert len(expressions) > 150
    strategies = {s for seed in range(25) for region in generate_scene(seed, 160, 120).regions
                  for s in region.strategies}
    assert {"category", "colour", "size", "position", "relation", "plural", "table"} <= strategies
    rejected = [e for e in expressions if not grammar.accepts(e)]
    assert not rejected, rejected[:10]
    for verb in COMMANDS + STUFF_COMMANDS:
        assert grammar.accepts(f"{verb} the red cup on the left"), verb
    # The shape is a noun phrase, not any sequence of the words (the word-loop grammar's
    # misrecognitions of the fixtures are all refused).
    for salad in ("to top the red top on the left", "the cup at the red cup on the left",
                  "find the two yellow can", "the jar on the table all", "red the blue bottle",
                  "the right red cup on the left", "the cup on", "the"):
        assert not grammar.accepts(salad), salad
    words = Recognizer(checkpoint_vocabulary(), "words").grammar
    assert words.shape == "words" and words.accepts("to top the red top on the left")


def test_compound_words_get_a_pronunciation(grammar_recognizer):
    """"leftmost" is not in the dictionary: it is added as "left" + "most"."""
    assert {"leftmost", "rightmost"} <= set(grammar_recognizer.composed)
    assert grammar_recognizer.grammar.unpronounceable == ()
    assert grammar_recognizer.grammar.accepts("the leftmost red cup")
    assert not grammar_recognizer.pronounceable("qwxzqwxz")


def test_grammar_follows_the_checkpoint_vocabulary(checkpoints, grammar_recognizer):
    from tests.harness import TINY_VOCABULARY as TEST_VOCABULARY

    tiny = Recognizer(checkpoint_vocabulary(checkpoints["random"]), "grammar").grammar
    assert "sky" in tiny.words and "person" in tiny.words
    assert "sky" not in grammar_recognizer.grammar.words
    assert tiny.accepts("find the far left person")
    assert not tiny.accepts("the wooden table")
    assert set(TEST_VOCABULARY[0].split()) <= set(tiny.words) | {"pick", "up"}
    # Words of no class of the synthetic world are modifiers or heads of the command shape.
    assert {"sky", "person", "men"} <= set(tiny.unclassified)
    for text in TEST_VOCABULARY:
        assert tiny.accepts(text), text


def test_grammar_without_pronounceable_words_is_refused():
    with pytest.raises(GrammarError, match="general language model"):
        command_grammar(["<pad>", "<go>", "<eos>", "<unk>", "zzxq"], lambda w: False)
    words, missing = expression_words(["<unk>", "Cup", "cup", "/", "qwxz", "it's"],
                                      lambda w: w != "qwxz")
    assert words == ["cup", "it's"] and missing == ["qwxz"]


def test_read_wav_mixes_down_and_resamples(tmp_path):
    from scipy.io import wavfile

    t = np.arange(44100) / 44100.0
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    wavfile.write(tmp_path / "stereo.wav", 44100, np.stack([tone, tone], 1).astype(np.float32))
    samples = read_wav(tmp_path / "stereo.wav")
    assert samples.dtype == np.int16 and len(samples) == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(samples.astype(float)))
    assert abs(np.argmax(spectrum) - 440) <= 1          # 1 Hz bins over one second
    assert 0.45 < np.abs(samples).max() / 32768 < 0.55
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(SpeechError, match="cannot read WAV"):
        read_wav(tmp_path / "bad.wav")
    with pytest.raises(SpeechError, match="not found"):
        wav_files(tmp_path / "missing.wav")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(SpeechError, match="no .wav files"):
        wav_files(tmp_path / "empty_dir")


def test_utterances_are_found_one_per_command():
    one = read_wav(FIXTURES / "klatt_1.wav")
    two = read_wav(FIXTURES / "female_3.wav")
    silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
    assert len(utterances_of(one)) == 1
    found = utterances_of(np.concatenate([one, silence, two]))
    assert len(found) == 2
    assert found[0][0] < len(one) / SAMPLE_RATE < found[1][0]
    assert utterances_of(silence) == []


def test_word_errors():
    assert word_errors("pick up the cup", "pick up the cup") == 0
    assert word_errors("pick up the cup", "the cup") == 2
    assert word_errors("the jar", "the red jar on") == 2
    assert word_errors("the jar", "a car") == 2


@pytest.mark.parametrize("name", ["klatt_1.wav", "female_1.wav", "klatt_2.wav"])
def test_grammar_decodes_fixtures_exactly(grammar_recognizer, name):
    """The issue's command ("pick up the red cup on the left") in both voices, and another."""
    utterance = grammar_recognizer.decode(read_wav(FIXTURES / name))
    reference = TRANSCRIPTS[name]
    assert utterance.text == reference
    assert grammar_recognizer.grammar.accepts(utterance.text)
    assert 0.5 <= utterance.confidence <= 1.0
    # What the node would give the model: the command words stripped.
    assert parse_command(utterance.text).expression.startswith("the ")


def test_general_model_decodes_to_english_words():
    recognizer = Recognizer(None, "general")
    utterance = recognizer.decode(read_wav(FIXTURES / "klatt_2.wav"))
    assert utterance.text and utterance.text.islower()
    assert 0.0 <= utterance.confidence <= 1.0
    with pytest.raises(SpeechError, match="vocabulary"):
        Recognizer(None, "grammar")
    with pytest.raises(SpeechError, match="language_model"):
        Recognizer(None, "klingon")


def test_microphone_without_audio_library_or_device_says_so(ros_env):
    """With no PortAudio (or no input device) the executable exits 1 with a clear message."""
    try:
        import sounddevice
        sounddevice.check_input_settings(samplerate=SAMPLE_RATE, channels=1, dtype="int16")
        pytest.skip("a working audio input device is present")
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - OSError (no PortAudio) or PortAudioError (no device)
        pass
    result = subprocess.run(
        [sys.executable, "-m", "refseg_node.speech.command_node", "--ros-args",
         "-p", "source:=microphone", "-p", "language_model:=general"],
        capture_output=True, text=True, timeout=120, env=ros_env, cwd=REPO)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "PortAudio" in output or "audio input device" in output or "sounddevice" in output
    assert "-p source:=FILE.wav" in output                     # ros2 run, speech_command
    assert "speech_source:=FILE.wav" in output                 # the launch file's argument


def test_the_speech_node_serves_the_refseg_node_of_its_namespace():
    from refseg_node.speech.command_node import served_node

    assert served_node("refseg", "/") == "/refseg"             # the default: /refseg/query
    assert served_node("refseg", "/head") == "/head/refseg"
    assert served_node("seg/", "/robot/head") == "/robot/head/seg"
    assert served_node("/wrist/refseg", "/head") == "/wrist/refseg"
    with pytest.raises(SpeechError):
        served_node(" ", "/")

