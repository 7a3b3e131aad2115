"""The attack suite: planted instructions in copies of real abstracts, through the assistant.

:mod:`evals.attacks.plants` writes the planted instructions (``plants.jsonl``: shapes,
obfuscations, languages, titles and abstracts; each with what it asks for and how to tell
the answer did it); :mod:`evals.attacks.suite` plants each in a copy of a real abstract of
the sample collection, asks the question about that paper through the real assistant, and
measures what got through. ``benchmarks/attacks.py`` runs it on the default model;
``tests/test_attacks.py`` runs a bounded part in CI.
"""
