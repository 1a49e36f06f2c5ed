// Reading diffusers `config.json` files: typed errors naming the option and the file, diffusers defaults for
// missing keys, "int or list" options, and refusal of options this port does not implement.
import Foundation
import TensorCore

/// A config file that this port cannot use; every case names the option (JSON key) and the file.
public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The option has a value that diffusers accepts but this port does not implement.
    case unsupported(option: String, value: String, file: String)
    /// The option's value is malformed or inconsistent with the others.
    case invalid(option: String, reason: String, file: String)
    /// The file could not be read or is not a JSON object.
    case unreadable(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unsupported(option, value, file):
            return "\(file): unsupported \(option) = \(value) (not implemented by this port)"
        case let .invalid(option, reason, file):
            return "\(file): invalid \(option): \(reason)"
        case let .unreadable(file, reason):
            return "\(file): cannot read config: \(reason)"
        }
    }
}

/// A JSON value, kept to compare options against their supported values and to print them in errors.
enum JSONValue: Decodable, Equatable, CustomStringConvertible {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Swift.Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object(let o): return "{" + o.keys.sorted().map { "\"\($0)\": \(o[$0]!)" }.joined(separator: ", ") + "}"
        }
    }
}

struct JSONKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension CodingUserInfoKey {
    /// The config file's name, for error messages (set by `decodeConfiguration`).
    static let configurationFile = CodingUserInfoKey(rawValue: "StyleDiffusion.configurationFile")!
}

/// Decodes `T` from JSON, turning every decoding failure into a `ConfigurationError` naming `file`.
func decodeConfiguration<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
    let decoder = JSONDecoder()
    decoder.userInfo[.configurationFile] = file
    do {
        return try decoder.decode(T.self, from: data)
    } catch let error as ConfigurationError {
        throw error
    } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
        let option = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw ConfigurationError.invalid(option: option, reason: context.debugDescription, file: file)
    } catch {
        throw ConfigurationError.unreadable(file: file, reason: "\(error)")
    }
}

/// Reads `T` from a config file on disk.
func loadConfiguration<T: Decodable>(_ type: T.Type, contentsOf url: URL) throws -> T {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw ConfigurationError.unreadable(file: url.path, reason: fileErrorCause(error))
    }
    return try decodeConfiguration(T.self, from: data, file: url.path)
}

/// Typed access to the keys of one config object; `null` and a missing key both mean "the default".
struct ConfigReader {
    let container: KeyedDecodingContainer<JSONKey>
    let file: String

    init(_ decoder: Swift.Decoder) throws {
        container = try decoder.container(keyedBy: JSONKey.self)
        file = decoder.userInfo[.configurationFile] as? String ?? "config.json"
    }

    func raw(_ key: String) throws -> JSONValue {
        try container.decodeIfPresent(JSONValue.self, forKey: JSONKey(key)) ?? .null
    }

    /// The value of `key`, or `fallback` when it is missing or null.
    func value<T: Decodable>(_ key: String, _ fallback: T) throws -> T {
        do {
            return try container.decodeIfPresent(T.self, forKey: JSONKey(key)) ?? fallback
        } catch {
            throw ConfigurationError.invalid(option: key, reason: "expected \(T.self), found \(try raw(key))", file: file)
        }
    }

    /// A value given once for all `count` blocks or as a list with one entry per block.
    func perBlock<T: Decodable>(_ key: String, _ fallback: T, count: Int) throws -> [T] {
        if let list = try? container.decodeIfPresent([T].self, forKey: JSONKey(key)) {
            guard list.count == count else {
                throw ConfigurationError.invalid(option: key, reason: "\(list.count) entries for \(count) blocks", file: file)
            }
            return list
        }
        return Array(repeating: try value(key, fallback), count: count)
    }

    /// Throws `unsupported` unless `key` is missing, null (the default) or equal to one of `allowed`.
    func require(_ key: String, in allowed: [JSONValue]) throws {
        let v = try raw(key)
        guard v == .null || allowed.contains(v) else {
            throw ConfigurationError.unsupported(option: key, value: v.description, file: file)
        }
    }

    /// Throws `unsupported` unless `key` is missing or null.
    func requireNull(_ key: String) throws {
        try require(key, in: [])
    }

    func unsupported(_ key: String, _ value: String) -> ConfigurationError {
        .unsupported(option: key, value: value, file: file)
    }

    func invalid(_ key: String, _ reason: String) -> ConfigurationError {
        .invalid(option: key, reason: reason, file: file)
    }
}

/// Writes config keys; per-level lists whose entries are all equal are written as one value, as diffusers does.
struct ConfigWriter {
    var container: KeyedEncodingContainer<JSONKey>

    init(_ encoder: Swift.Encoder, className: String) throws {
        container = encoder.container(keyedBy: JSONKey.self)
        try container.encode(className, forKey: JSONKey("_class_name"))
    }

    mutating func put<T: Encodable>(_ key: String, _ value: T) throws {
        try container.encode(value, forKey: JSONKey(key))
    }

    mutating func putNull(_ key: String) throws {
        try container.encodeNil(forKey: JSONKey(key))
    }

    mutating func putPerBlock<T: Encodable & Equatable>(_ key: String, _ values: [T]) throws {
        if let first = values.first, values.allSatisfy({ $0 == first }) { try put(key, first) } else { try put(key, values) }
    }
}

/// Pretty, key-sorted JSON as diffusers writes `config.json`.
func encodeConfiguration<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(value)
}
