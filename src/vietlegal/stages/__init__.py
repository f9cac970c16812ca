"""One module per dvc.yaml stage, named as the stage; each reads top to bottom and never imports another.

What two stages share lives in the library below (data, model, metrics, rag, train). `vietlegal <stage>`
runs `main` (the first docstring line is its help); dvc.yaml is the map.
"""
