// safetensors reader and writer.
