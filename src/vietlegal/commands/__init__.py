"""The commands around the pipeline that are no dvc.yaml stage: serve, bench, score, summary, remote, tiny."""
