"""Operating a deployment: the `orderstream` command (`cli`), dead letters (list, replay),
rebuilding the read models (`replay`), and the Kubernetes topic manifests (`manifests`)."""
