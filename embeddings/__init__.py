"""Text to vectors, and the FAISS indexes that hold them.

This package knows nothing of needs, outcomes or databases of records: it turns
text into L2-normalised float32 vectors (``encoder``), remembers every vector it
ever computed keyed by model and text (``vector_cache``), and keeps id-mapped
inner-product indexes that can be saved and reloaded safely (``index``).
"""
