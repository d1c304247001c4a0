"""Training: the engine (:func:`glcf.training.engine.fit`), its loss, the one-process and DDP strategies,
and the cached encoder taps."""
