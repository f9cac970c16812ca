"""The OpenAI-compatible server: protocol (wire format, errors), parsing (request -> sampling request), routes
(HTTP side and queue), one worker per backend (hf_worker, vllm_worker), Prometheus, auth and limits.
`vietlegal serve` (vietlegal.commands.serve) starts it."""
