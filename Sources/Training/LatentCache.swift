// Latents on disk (`--cache-latents-to-disk`): each VAE-encoded crop of a training image is also written as
// `<run>/latents/<digest>.safetensors`, so a resumed run does not encode again. The stored key names the crop
// (size, offset, flip) and the image file (path, byte size, modification time); the cache lives in the run
// folder, whose base model (and so VAE) never changes. A file whose stored key differs is ignored and rewritten.
import Foundation
import SafeTensors
import TensorCore

extension DreamBoothDataset {
    /// The stored latent of `key` for example `index`, nil when there is none (or it is for another key).
    func cachedLatent(key: String, index: Int) throws -> Tensor? {
        guard let (path, fullKey) = latentFile(key: key, index: index),
              FileManager.default.fileExists(atPath: path) else { return nil }
        guard let file = try? SafeTensorsFile(path: path), file.metadata["key"] == fullKey,
              let latent = try? file.tensor("latent") else { return nil }
        return latent
    }

    /// Stores the latent of `key` for example `index` (atomically) when a cache folder is set.
    func storeLatent(_ latent: Tensor, key: String, index: Int) throws {
        guard let (path, fullKey) = latentFile(key: key, index: index) else { return }
        do {
            try FileManager.default.createDirectory(at: latentCacheDirectory!, withIntermediateDirectories: true)
            try SafeTensorsWriter.write(["latent": latent], metadata: ["key": fullKey], to: path)
        } catch {
            throw TrainingError.invalidData("cannot write the latent cache file \(path): \(error)")
        }
    }

    /// The cache file and the full key (crop key + the image file's identity) of a crop.
    private func latentFile(key: String, index: Int) -> (String, String)? {
        guard let folder = latentCacheDirectory else { return nil }
        let file = examples[index].file
        let attributes = try? FileManager.default.attributesOfItem(atPath: file)
        let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let fullKey = "\(file)|\(size)|\(modified)|\(key)"
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in fullKey.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return (folder.appendingPathComponent(String(format: "%016llx.safetensors", h)).path, fullKey)
    }
}
