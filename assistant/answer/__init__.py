"""Answering a question: the pipeline from the question to the checked answer.

retrieval (papers for the question) → question (what it asks for) → evidence (which
sentences hold it, what the model reads, how strong it is) → the model (:mod:`assistant.llm`)
→ citations (the structure of its answer) → verify (every sentence checked against the
abstracts) → compose (what the user sees). :mod:`~assistant.answer.engine` runs the steps.
"""
