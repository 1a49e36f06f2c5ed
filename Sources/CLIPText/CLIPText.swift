// CLIP BPE tokenizer and text encoder.
