"""Which adapters are served, at which version: catalog, live loads (swap, watch), version hashes, model info."""
