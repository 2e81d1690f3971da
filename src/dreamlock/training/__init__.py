"""Training: config, data, prior preservation, checkpoints, the loop, and the `train` API."""
