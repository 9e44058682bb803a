"""Thin command-line entry points: refseg-train, -eval, -predict, -synth and -baselines."""
