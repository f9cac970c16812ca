"""The inference worker process: the LitAPI both backends share, the HF loop, the vLLM engine, liveness."""
