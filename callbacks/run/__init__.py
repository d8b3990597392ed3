"""What a train.py run needs around the story train.py tells: the console (header, warnings, closing summary), the
machine (threads, GPU fallback), config checks before anything is built, the Hydra job (overrides, sweeps, run
directory), TensorBoard hparams, and the one file every run leaves for the sweep tools (``result.json``)."""
