"""The C kernels of the model, one wrapper module per csrc file, each C call beside its NumPy twin."""
