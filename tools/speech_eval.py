"""Word error rate, exact-command rate and decode time of the spoken-command fixtures.

    python tools/speech_eval.py [--fixtures tests/fixtures/speech] [--json out.json]
        [--language-model grammar words general] [--set beam=1e-60 ...]

Decodes every fixture WAV (each a whole utterance) with the command-shaped grammar built from
the checkpoint's vocabulary (``--checkpoint``, default the shipped one), with the word-loop
grammar of the same words and with pocketsphinx's general US English model, and prints one
Markdown table row per language model and voice, then the files that were not exact.
``--set`` passes pocketsphinx configuration values on top of the recognizer's own.
WER = word edits / reference words; exact = the decoded text is the transcript; real-time
factor = decode seconds / audio seconds (one thread).
"""

import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "model")]

from refseg_model.fileio import atomic_write  # noqa: E402
from refseg_node.speech.recognizer import (  # noqa: E402
    LANGUAGE_MODELS,
    SAMPLE_RATE,
    Recognizer,
    checkpoint_vocabulary,
    read_wav,
    word_errors,
)


def evaluate(recognizer, fixtures: Path, rows) -> dict:
    """Decode every fixture; return totals per voice and overall, and every hypothesis."""
    groups: dict[str, dict] = {}
    decoded = []
    for row in rows:
        samples = read_wav(fixtures / row["file"])
        u = recognizer.decode(samples)
        errors = word_errors(row["text"], u.text)
        decoded.append({"file": row["file"], "reference": row["text"], "hypothesis": u.text,
                        "confidence": round(u.confidence, 3), "word_errors": errors})
        for key in (row["voice"], "all"):
            g = groups.setdefault(key, {"files": 0, "words": 0, "errors": 0, "exact": 0,
                                        "audio_s": 0.0, "decode_s": 0.0})
            g["files"] += 1
            g["words"] += len(row["text"].split())
            g["errors"] += errors
            g["exact"] += u.text == row["text"]
            g["audio_s"] += len(samples) / SAMPLE_RATE
            g["decode_s"] += u.decode_seconds
    for g in groups.values():
        g["wer"] = g["errors"] / g["words"]
        g["exact_rate"] = g["exact"] / g["files"]
        g["real_time_factor"] = g["decode_s"] / g["audio_s"]
    return {"groups": groups, "decoded": decoded}


def parse_option(item: str) -> tuple[str, object]:
    """Turn ``KEY=VALUE`` into a pocketsphinx option (a number, a truth value or a string)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
    if value.lower() in ("true", "false", "yes", "no"):
        return key, value.lower() in ("true", "yes")
    try:
        return key, float(value) if any(c in value for c in ".e") else int(value)
    except ValueError:
        return key, value


def main(argv=None) -> int:
    """Run the language models over the fixtures and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=REPO / "tests" / "fixtures" / "speech")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--language-model", nargs="+", choices=LANGUAGE_MODELS,
                        default=list(LANGUAGE_MODELS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="pocketsphinx configuration values (numbers or true/false)")
    args = parser.parse_args(argv)
    options = dict(parse_option(item) for item in args.set)
    with open(args.fixtures / "transcripts.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    vocabulary = checkpoint_vocabulary(args.checkpoint)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    report = {"machine": {"cpu": cpu, "cores": os.cpu_count(),
                          "load_average_before": os.getloadavg()}, "options": options,
              "results": {}}
    print("| language model | voice | files | WER | exact commands | decode s per audio s |")
    print("|---|---|---|---|---|---|")
    for name in args.language_model:
        recognizer = Recognizer(vocabulary if name != "general" else None, name,
                                options=options)
        result = evaluate(recognizer, args.fixtures, rows)
        report["results"][name] = result
        for voice, g in sorted(result["groups"].items(), key=lambda kv: kv[0] == "all"):
            print(f"| {name} | {voice} | {g['files']} | {g['wer']:.3f} | "
                  f"{g['exact']}/{g['files']} | {g['real_time_factor']:.2f} |", flush=True)
    for name, result in report["results"].items():
        for d in result["decoded"]:
            if d["word_errors"]:
                print(f"{name}: {d['file']}: {d['reference']!r} -> {d['hypothesis']!r} "
                      f"({d['word_errors']} errors, confidence {d['confidence']})")
    report["machine"]["load_average_after"] = os.getloadavg()
    print(f"machine: {cpu}, {os.cpu_count()} cores, load average before "
          f"{report['machine']['load_average_before'][0]:.1f}, after "
          f"{report['machine']['load_average_after'][0]:.1f}")
    if args.json:
        atomic_write(args.json, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
