"""Training: backends (Unsloth, TRL + PEFT), the SFT trainer, batching, checkpoints, hardware, the label audit,
curves and the adapter export. The `train` stage (vietlegal.stages.train) runs it."""
