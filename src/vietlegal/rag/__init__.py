"""Retrieval: the provision corpus, BM25 and dense indexes, fusion, the retriever, and the one template that puts
retrieved provisions into a prompt (context.py). See docs/rag.md."""
