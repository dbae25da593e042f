"""Post-processing of the model's middle: one filter per module, run by ``pipeline``."""
