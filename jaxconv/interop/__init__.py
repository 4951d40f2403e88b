"""Weights from other frameworks: `jaxconv.interop.torch.load` copies a PyTorch module's."""
