"""vietlegal: fine-tune, evaluate and serve a Vietnamese legal assistant (Llama-3.1 + LoRA) as a DVC pipeline."""

__version__ = "0.1.0"
