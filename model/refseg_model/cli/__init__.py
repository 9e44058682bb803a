"""Thin command-line entry points: refseg-train, refseg-eval, refseg-predict, refseg-synth."""
