"""The model: one chat door (:class:`~assistant.llm.base.ChatModel`) and its backends.

base (the door, and the backend chosen from the settings) → local (a GGUF file in process,
with the CPU checks of cpu) or openai_compat (any OpenAI-compatible server); presets (which
GGUF files PyPI packages carry); llama_index_llm (a ChatModel as a llama-index LLM).
"""
