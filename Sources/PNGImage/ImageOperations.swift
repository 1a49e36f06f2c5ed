// ImageOperations: the crops, flips and contact sheets the trainer and the sampler need.
//
// Crop placement follows torchvision (used by diffusers' DreamBooth scripts):
//   CenterCrop: top = round((H − h) / 2), left = round((W − w) / 2)  (Python round: half to even)
//   RandomCrop: top ∈ 0...H − h, left ∈ 0...W − w, uniformly.

extension Image {
    /// The `width` × `height` region whose top-left corner is (`x`, `y`).
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws -> Image {
        guard w > 0, h > 0, x >= 0, y >= 0, x <= width - w, y <= height - h else {
            throw PNGError.invalidArgument("crop \(w)x\(h) at (\(x), \(y)) does not fit in a \(width)x\(height) image")
        }
        return Image(width: w, height: h) { out in
            pixels.withUnsafeBufferPointer { src in
                for row in 0..<h {
                    (out + row * w * 3).update(from: src.baseAddress! + ((y + row) * width + x) * 3, count: w * 3)
                }
            }
        }
    }

    /// The centred `width` × `height` region (torchvision `CenterCrop` placement).
    public func centerCropped(width w: Int, height h: Int) throws -> Image {
        let top = Int((Double(height - h) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - w) / 2).rounded(.toNearestOrEven))
        return try cropped(x: left, y: top, width: w, height: h)
    }

    /// A uniformly placed `width` × `height` region; the offsets come from `generator`.
    public func randomCropped<G: RandomNumberGenerator>(width w: Int, height h: Int, using generator: inout G) throws -> Image {
        guard w > 0, h > 0, w <= width, h <= height else {
            throw PNGError.invalidArgument("random crop \(w)x\(h) does not fit in a \(width)x\(height) image")
        }
        let top = Int.random(in: 0...(height - h), using: &generator)
        let left = Int.random(in: 0...(width - w), using: &generator)
        return try cropped(x: left, y: top, width: w, height: h)
    }

    /// The mirror image (left and right swapped).
    public func flippedHorizontally() -> Image {
        Image(width: width, height: height) { out in
            pixels.withUnsafeBufferPointer { src in
                for y in 0..<height {
                    for x in 0..<width {
                        let s = (y * width + width - 1 - x) * 3, d = (y * width + x) * 3
                        out[d] = src[s]
                        out[d + 1] = src[s + 1]
                        out[d + 2] = src[s + 2]
                    }
                }
            }
        }
    }

    /// A contact sheet: `images` in rows of `columns`, each centred in a cell as large as the largest
    /// image, `gap` pixels of `background` between cells and around the edge.
    public static func grid(_ images: [Image], columns: Int, gap: Int = 0,
                            background: (UInt8, UInt8, UInt8) = (255, 255, 255)) throws -> Image {
        guard !images.isEmpty, columns > 0, (0...4096).contains(gap) else {
            throw PNGError.invalidArgument("a grid needs images, columns > 0 and a gap in 0...4096 (got \(images.count), \(columns), \(gap))")
        }
        let cellWidth = images.map(\.width).max()!, cellHeight = images.map(\.height).max()!
        let cols = min(columns, images.count), rows = (images.count + columns - 1) / columns
        let width = cols * cellWidth + (cols + 1) * gap, height = rows * cellHeight + (rows + 1) * gap
        guard width.multipliedReportingOverflow(by: height).partialValue <= PNG.defaultMaxPixels,
              !width.multipliedReportingOverflow(by: height).overflow else {
            throw PNGError.invalidArgument("a \(width)x\(height) grid is larger than \(PNG.defaultMaxPixels) pixels")
        }
        var sheet = try Image(width: width, height: height, color: background)
        for (i, image) in images.enumerated() {
            let x = gap + (i % columns) * (cellWidth + gap) + (cellWidth - image.width) / 2
            let y = gap + (i / columns) * (cellHeight + gap) + (cellHeight - image.height) / 2
            sheet.paste(image, x: x, y: y)
        }
        return sheet
    }

    /// Copies `image` with its top-left corner at (`x`, `y`); the caller guarantees it fits.
    private mutating func paste(_ image: Image, x: Int, y: Int) {
        let w = width
        pixels.withUnsafeMutableBufferPointer { dst in
            image.pixels.withUnsafeBufferPointer { src in
                for row in 0..<image.height {
                    (dst.baseAddress! + ((y + row) * w + x) * 3)
                        .update(from: src.baseAddress! + row * image.width * 3, count: image.width * 3)
                }
            }
        }
    }
}
