// Adapter hashes for PNG metadata (A1111 `Lora hashes`).
import SafeTensors

/// Hashes that image metadata and adapter files carry.
public enum LoRAHash {
    /// The hash A1111 writes in `Lora hashes`: for a `.safetensors` file, SHA-256 of the bytes after the
    /// header (`addnet_hash_safetensors` in sd-scripts / A1111 `modules/hashes.py`, so editing metadata does
    /// not change it), first 12 hex digits; for other files SHA-256 of the whole file.
    public static func shortHash(ofFile path: String) throws -> String {
        String(try fullHash(ofFile: path).prefix(12))
    }

    /// The full 64-digit hash `shortHash` abbreviates.
    public static func fullHash(ofFile path: String) throws -> String {
        try SHA256.dataSectionHexDigest(ofFile: path)
    }

    /// `"name: hash, name2: hash2"`, the value of A1111's `Lora hashes` parameter (quoted by the caller).
    public static func parameterValue(_ entries: [(name: String, hash: String)]) -> String {
        entries.map { "\($0.name): \($0.hash)" }.joined(separator: ", ")
    }
}
