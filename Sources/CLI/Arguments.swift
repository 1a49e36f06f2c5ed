// Command-line argument scanning shared by all six executables: `--name value`, `--name=value`, boolean
// `--flag`s, `-h`/`--help`, declared one-letter options (`-o`) and positionals, with typed value parsing.
// Every problem is a `CommandLineError.usage` (exit 2); `runCommand` turns any other error into exit 1.

import Foundation
import TensorCore

/// An error the executables turn into one line on stderr and an exit code.
public enum CommandLineError: Error, CustomStringConvertible, Equatable {
    /// The command line itself is wrong (unknown option, missing or malformed value): exit code 2.
    case usage(String)
    /// The command line is well-formed but cannot be carried out: exit code 1.
    case failure(String)

    public var description: String {
        switch self {
        case .usage(let m): return m
        case .failure(let m): return m
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage: return 2
        case .failure: return 1
        }
    }
}

/// Scanned arguments: option values by name, flags, positionals, in order. Every command accepts `--help`
/// and `-h` (the flag `help`).
public struct ParsedArguments {
    public private(set) var values: [String: [String]] = [:]
    public private(set) var flags: Set<String> = []
    public private(set) var positionals: [String] = []

    /// Scans `arguments` (without the program name). `options` take a value, `flagNames` take none;
    /// both are spelled without the leading `--`. `shortNames` maps one-letter spellings (`-o`) to option
    /// names, `aliases` other tools' long spellings (`cfg-scale` → `cfg`); `snake_case` spellings of known
    /// names are accepted as well (`--max_train_steps`, diffusers' style). `--` ends option parsing; other
    /// arguments that start with a single `-` are positionals.
    public init(_ arguments: [String], options: Set<String>, flagNames: Set<String>,
                shortNames: [String: String] = [:], aliases: [String: String] = [:]) throws {
        let flagNames = flagNames.union(["help"])
        var i = 0
        var optionsEnded = false
        while i < arguments.count {
            var arg = arguments[i]
            i += 1
            if !optionsEnded, arg == "-h" { arg = "--help" }
            if !optionsEnded, let long = shortNames[arg] { arg = "--" + long }
            guard !optionsEnded, arg.hasPrefix("--"), arg.count > 2 else {
                if arg == "--" && !optionsEnded { optionsEnded = true } else { positionals.append(arg) }
                continue
            }
            let body = arg.dropFirst(2)
            let spelled = String(body.prefix(while: { $0 != "=" }))
            var name = aliases[spelled] ?? spelled
            if !flagNames.contains(name), !options.contains(name), name.contains("_") {
                let dashed = name.replacingOccurrences(of: "_", with: "-")
                name = aliases[dashed] ?? dashed
            }
            let inline = body.contains("=") ? String(body.drop(while: { $0 != "=" }).dropFirst()) : nil
            if flagNames.contains(name) {
                guard inline == nil else { throw CommandLineError.usage("--\(name) takes no value") }
                flags.insert(name)
            } else if options.contains(name) {
                if let inline {
                    values[name, default: []].append(inline)
                } else {
                    guard i < arguments.count else { throw CommandLineError.usage("--\(name) needs a value") }
                    values[name, default: []].append(arguments[i])
                    i += 1
                }
            } else {
                let known = (options.union(flagNames)).sorted().map { "--" + $0 }.joined(separator: ", ")
                throw CommandLineError.usage("unknown option --\(spelled) (options: \(known))")
            }
        }
    }

    /// The last value given for `name`.
    public func string(_ name: String) -> String? { values[name]?.last }

    /// Whether `--name` was given (flag or option).
    public func has(_ name: String) -> Bool { flags.contains(name) || values[name] != nil }

    /// The last value of `name`; a usage error when it was not given.
    public func required(_ name: String) throws -> String {
        guard let v = string(name) else { throw CommandLineError.usage("missing --\(name)") }
        return v
    }

    /// The last value of `name` as an integer within `range`.
    public func int(_ name: String, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s) else { throw CommandLineError.usage("--\(name) expects an integer, got \"\(s)\"") }
        guard range.contains(v) else {
            throw CommandLineError.usage("--\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(v)")
        }
        return v
    }

    /// The last value of `name` as an unsigned 64-bit integer.
    public func uint64(_ name: String) throws -> UInt64? {
        guard let s = string(name) else { return nil }
        guard let v = UInt64(s) else { throw CommandLineError.usage("--\(name) expects an integer ≥ 0, got \"\(s)\"") }
        return v
    }

    /// The last value of `name` as an integer within `range`; a usage error when it was not given.
    public func requiredInt(_ name: String, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let v = try int(name, in: range) else { throw CommandLineError.usage("missing --\(name)") }
        return v
    }

    /// The last value of `name` as a finite Float, parsed as a Float (no rounding through Double).
    public func float(_ name: String) throws -> Float? {
        guard let s = string(name) else { return nil }
        guard let v = Float(s), v.isFinite else { throw CommandLineError.usage("--\(name) expects a number, got \"\(s)\"") }
        return v
    }

    /// The last value of `name` as a finite number.
    public func double(_ name: String) throws -> Double? {
        guard let s = string(name) else { return nil }
        guard let v = Double(s), v.isFinite else { throw CommandLineError.usage("--\(name) expects a number, got \"\(s)\"") }
        return v
    }
}

/// Runs an executable's body: prints a thrown error as one line `<program>: error: …` on stderr and
/// returns the exit code (2 for usage errors, 1 otherwise, 0 on success).
public func runCommand(_ program: String, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch let error as CommandLineError {
        printError("\(program): error: \(error.description)")
        return error.exitCode
    } catch {
        printError("\(program): error: \(inWords(error))")
        return 1
    }
}

/// An error as one line of words: a Foundation file error names its path and cause (`/x/out: Not a
/// directory`) instead of its `NSCocoaErrorDomain Code=512 … UserInfo=…` dump.
public func inWords(_ error: Error) -> String {
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain else { return oneLine("\(error)") }
    let path = ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    let cause = fileErrorCause(error)
    return path.map { "\($0): \(cause)" } ?? "file error: \(cause)"
}

/// Writes `line` and a newline to stderr.
public func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// `text` on one line: line breaks become "; ".
func oneLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
}
