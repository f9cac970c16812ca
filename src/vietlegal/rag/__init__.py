"""Grounded answers: retrieve the provisions a question needs and put them in the prompt (RAG).

    corpus.py     data/corpus/*.jsonl -> validated provisions; the in-force filter
    bm25.py       offline lexical retrieval over Vietnamese syllables
    dense.py      sentence-transformers embeddings + FAISS (imported lazily)
    fusion.py     reciprocal rank fusion
    index.py      stage `index` -> models/index/; `Retriever.load` for everything that retrieves
    context.py    THE template that puts the retrieved provisions into the system message
    retrieval.py  stage `retrieval`: recall@k on the test split
See docs/rag.md.
"""
