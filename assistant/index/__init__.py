"""The index: papers cut into chunks, embedded and stored in Chroma, and the BM25 index beside it.

chunking (token-counted chunks and the hashes that say what changed) → embeddings (the local
sentence embedder) → chroma (the dense collection) and lexical (the persisted BM25 index,
written by lexical_writer).
"""
