// Reverse-mode automatic differentiation over TensorCore operations.
