"""The model: chat template, base-model resolution, the tiny model, the adapter and its manifest, the device
and dtype policy, the sampling request and the decoding loop."""
