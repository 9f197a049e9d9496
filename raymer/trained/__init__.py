"""A trained model outside its torch modules (no Ray): ``checkpoint`` (its files: save,
resolve a train or compare output, load, export; logits -> scores and labels), ``batches``
(the padded tensors it reads, made one way everywhere) and ``targets`` (what a clip teaches
it: label indices, multi-hot, emotion dimensions). ``raymer.models`` stays pure torch."""
