"""The wire format: request models, the one conversion to SamplingRequest, response shapes, errors, Piece."""
