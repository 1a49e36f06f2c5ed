// FileErrors: the cause of a failed file operation in words ("No such file or directory"), for the one-line
// errors every library throws. Foundation's own description of such an error ("The operation could not be
// completed. The file doesn't exist.") does not say which path, and its dump names error domains and codes.
import Foundation

/// The cause of `error` in words: for a Foundation file error the operating system's text for its errno
/// ("Permission denied", "Not a directory"); for any other error its description.
public func fileErrorCause(_ error: Error) -> String {
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    guard ns.domain == NSCocoaErrorDomain else { return "\(error)" }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    switch CocoaError.Code(rawValue: ns.code) {
    case .fileNoSuchFile, .fileReadNoSuchFile: return String(cString: strerror(ENOENT))
    case .fileWriteNoPermission, .fileReadNoPermission: return String(cString: strerror(EACCES))
    case .fileWriteOutOfSpace: return String(cString: strerror(ENOSPC))
    case .fileWriteFileExists: return String(cString: strerror(EEXIST))
    case .fileWriteVolumeReadOnly: return String(cString: strerror(EROFS))
    case .fileReadCorruptFile, .fileReadInapplicableStringEncoding: return "unreadable contents"
    default: return ns.code >= 512 && ns.code < 1024 ? "cannot be written" : "cannot be read"
    }
}
