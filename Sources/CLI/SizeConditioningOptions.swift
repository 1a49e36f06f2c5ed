// SDXL's size and crop conditioning options of `generate`: `--original-size WxH`, `--crop-coords TOP,LEFT`,
// `--target-size WxH` (diffusers' `original_size`, `crops_coords_top_left`, `target_size`; defaults: the
// picture's size, 0,0, the picture's size).
import Pipeline

enum SizeConditioningOptions {
    static let names: Set<String> = ["original-size", "crop-coords", "target-size"]

    static let help = """
      --original-size WxH  SDXL: the size the picture pretends to come from (default: --width x --height)
      --crop-coords T,L    SDXL: top, left of the crop it pretends to be (default 0,0)
      --target-size WxH    SDXL: the size it is meant for (default: --width x --height)
    """

    /// The options given, or nil when none is.
    static func parse(_ args: ParsedArguments) throws -> SizeConditioning? {
        let original = try pair(args, "original-size", separator: "x")
        let crop = try pair(args, "crop-coords", separator: ",")
        let target = try pair(args, "target-size", separator: "x")
        if original == nil && crop == nil && target == nil { return nil }
        return SizeConditioning(originalSize: original, cropTopLeft: crop, targetSize: target)
    }

    private static func pair(_ args: ParsedArguments, _ name: String, separator: Character) throws -> [Int]? {
        guard let text = args.string(name) else { return nil }
        let parts = text.lowercased().split(separator: separator, omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b >= 0, a <= 65536, b <= 65536 else {
            let form = separator == "x" ? "WIDTHxHEIGHT, e.g. 1024x1024" : "TOP,LEFT, e.g. 0,0"
            throw CommandLineError.usage("--\(name) must be \(form), got \"\(text)\"")
        }
        return [a, b]
    }
}
