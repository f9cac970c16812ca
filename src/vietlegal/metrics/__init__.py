"""How answers are scored.

    scoring.py      every text metric under one set of names (score_all, METRIC_NAMES)
    rouge.py        ROUGE on Vietnamese syllables
    bleu.py         sacrebleu corpus BLEU and chrF++
    citation.py     legal citations (instrument, article) extracted and scored
    likelihood.py   token-weighted perplexity of reference answers (needs the model)
    llm_judge.py    LLM-as-judge: rubric, verdict parsing, cache, retries
"""
