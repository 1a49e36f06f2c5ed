// Module tree, layers and strict state-dict loading with diffusers/transformers key paths.
