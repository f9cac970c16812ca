"""`vietlegal serve` as the serving droplet runs it: in the clean clone that only pulled the adapter, Bearer key
"test-key", offline."""
from __future__ import annotations

from pathlib import Path


def droplet_server(clone: Path, log: Path, params: Path | None = None):
    """A ServerProcess (use it as a context manager: started on enter, its process group stopped on exit)."""
    from vietlegal.serve.process import ServerProcess

    return ServerProcess("models/adapter", log, api_key="test-key", params=params, cwd=clone,
                         env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
