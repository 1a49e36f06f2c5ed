// The dataset metadata kohya's train_network.py writes into an adapter (`ss_dataset_dirs`, `ss_tag_frequency`,
// `ss_bucket_info`, image counts, optimizer, caption and bucket options), in its exact text: values are
// Python's `str()` of the setting (`True`, `None`) and JSON as Python's `json.dumps` writes it (", " and
// ": " separators, non-ASCII escaped), so tools that read kohya's training info read ours.
import Foundation
import NN

/// A JSON value written as Python's `json.dumps` writes it; objects keep their key order.
public indirect enum PythonJSON: Equatable {
    case object([(String, PythonJSON)])
    case array([PythonJSON])
    case string(String)
    case int(Int)
    case double(Double)
    case null

    public static func == (a: PythonJSON, b: PythonJSON) -> Bool { a.text == b.text }

    public var text: String {
        switch self {
        case .object(let pairs): return "{" + pairs.map { Self.quote($0.0) + ": " + $0.1.text }.joined(separator: ", ") + "}"
        case .array(let items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        case .string(let s): return Self.quote(s)
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? "\(d)" : (d.isNaN ? "NaN" : d > 0 ? "Infinity" : "-Infinity")
        case .null: return "null"
        }
    }

    /// A JSON string with ensure_ascii escaping.
    static func quote(_ s: String) -> String {
        var out = "\""
        for unit in s.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out += String(UnicodeScalar(UInt8(unit)))
            default: out += String(format: "\\u%04x", unit)
            }
        }
        return out + "\""
    }
}

public enum KohyaMetadata {
    /// `{"10_sks dog": {"n_repeats": 10, "img_count": 5}}` over the concepts that have images.
    public static func datasetDirs(_ set: DreamBoothDataset?) -> PythonJSON {
        guard let set else { return .object([]) }
        return .object(set.concepts.indices.compactMap { c in
            let count = set.examples.filter { $0.concept == c }.count
            guard count > 0 else { return nil }
            return (set.concepts[c].folderName, .object([("n_repeats", .int(set.concepts[c].repeats)), ("img_count", .int(count))]))
        })
    }

    /// kohya's set_tag_frequency: per folder, each comma-separated tag of each image's caption (lowercased,
    /// trimmed), counted once per image.
    public static func tagFrequency(_ sets: [DreamBoothDataset]) -> PythonJSON {
        var folders: [(String, [(String, Int)])] = []
        for set in sets {
            for (c, concept) in set.concepts.enumerated() {
                var counts: [(String, Int)] = []
                for e in set.examples where e.concept == c {
                    for tag in e.prompt.split(separator: ",", omittingEmptySubsequences: false) {
                        let t = tag.trimmingCharacters(in: .whitespaces).lowercased()
                        guard !t.isEmpty else { continue }
                        if let k = counts.firstIndex(where: { $0.0 == t }) { counts[k].1 += 1 } else { counts.append((t, 1)) }
                    }
                }
                if let k = folders.firstIndex(where: { $0.0 == concept.folderName }) { folders[k].1 += counts } else {
                    folders.append((concept.folderName, counts))
                }
            }
        }
        return .object(folders.map { ($0.0, .object($0.1.map { ($0.0, .int($0.1)) })) })
    }

    /// `{"buckets": {"0": {"resolution": [w, h], "count": n}}, "mean_img_ar_error": x}` (counts with repeats),
    /// null without buckets.
    public static func bucketInfo(_ instances: DreamBoothDataset, classes: DreamBoothDataset?) -> PythonJSON {
        guard instances.buckets != nil else { return .null }
        var counts: [BucketSize: Int] = [:]
        for set in [instances, classes].compactMap({ $0 }) where set.buckets != nil {
            for b in set.bucketCounts { counts[b.size, default: 0] += b.count }
        }
        let buckets = counts.keys.sorted().enumerated().map { i, size in
            (String(i), PythonJSON.object([("resolution", .array([.int(size.width), .int(size.height)])), ("count", .int(counts[size]!))]))
        }
        return .object([("buckets", .object(buckets)), ("mean_img_ar_error", .double(instances.meanAspectError ?? 0))])
    }

    /// Images × repeats.
    public static func imageCount(_ set: DreamBoothDataset?) -> Int {
        guard let set else { return 0 }
        return set.examples.reduce(0) { $0 + max(1, set.concepts[$1.concept].repeats) }
    }

    static func python(_ b: Bool) -> String { b ? "True" : "False" }
}

extension StyleTrainer {
    /// kohya's dataset metadata of this run (empty for a run without dataset settings).
    public var datasetMetadata: [String: String] {
        guard let d = config.dataset else { return [:] }
        let regFromFolder = d.regDirectory != nil ? classes : nil
        let bucketed = instances.buckets
        return [
            "ss_dataset_dirs": KohyaMetadata.datasetDirs(instances).text,
            "ss_reg_dataset_dirs": KohyaMetadata.datasetDirs(regFromFolder).text,
            "ss_tag_frequency": KohyaMetadata.tagFrequency([instances] + [regFromFolder].compactMap { $0 }).text,
            "ss_bucket_info": KohyaMetadata.bucketInfo(instances, classes: regFromFolder).text,
            "ss_num_train_images": String(KohyaMetadata.imageCount(instances)),
            "ss_num_reg_images": String(config.usesPrior ? KohyaMetadata.imageCount(classes) : 0),
            "ss_caption_extension": d.captionExtension ?? ".caption",
            "ss_enable_bucket": KohyaMetadata.python(bucketed != nil),
            "ss_bucket_no_upscale": KohyaMetadata.python(bucketed?.noUpscale ?? false),
            "ss_min_bucket_reso": bucketed.map { String($0.minSide) } ?? "None",
            "ss_max_bucket_reso": bucketed.map { String($0.maxSide) } ?? "None",
            "ss_shuffle_caption": KohyaMetadata.python(d.shuffleCaption),
            "ss_keep_tokens": String(d.keepTokens),
            "ss_random_crop": KohyaMetadata.python(config.crop == .random),
            "ss_flip_aug": KohyaMetadata.python(config.flip),
            "ss_cache_latents": KohyaMetadata.python(model.isLatent),
        ]
    }
}
