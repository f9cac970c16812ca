"""The OpenAI-compatible server. `vietlegal serve` (vietlegal.commands.serve) starts it; docs/serving.md.

    protocol/  the wire format: typed request models (the one place a field, its bounds and its default live),
               the one conversion to SamplingRequest, response and chunk shapes, OpenAI's error object, the Piece
               the worker sends back
    http/      the HTTP process: routes that only move bytes, auth, body limits, draining, Prometheus
    workers/   the inference worker: the LitAPI both backends share, the HF loop, the vLLM engine, liveness
    versions/  which adapters are served at which version: catalog, live loads (swap, watch), version hashes;
               a model served whole (`--model`: a merged directory or a base alone)
    review/    the reviewers' page, its feedback endpoint and the citation check it shows
    server.py  wires them into one LitServer; process.py runs it as a child process (tests, benchmarks)
"""
