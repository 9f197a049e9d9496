"""The model contract, as records (no torch, no Ray): what a trained model is and what the
stages' columns say, so that every layer above may import it.

- ``spec``: ``ModelSpec``, a checkpoint's ``model.json`` (its shape, labels and targets, how
  its inputs were extracted);
- ``schema``: column names and Arrow schemas, the contract between stages;
- ``card``: the model card a checkpoint carries.

Checkpoint files and model batches (torch) are ``raymer.trained.checkpoint`` and
``raymer.trained.batches``; the typed answers are ``raymer.inference.prediction``.
"""
