// `train-style … --preview-dataset`: every training image as the trainer prepares it (resized to cover its
// bucket and centre-cropped to it) written as `dataset/<concept folder>/<name>.png`, plus a contact sheet
// `dataset.png` with each image's bucket and prompt under it, in the 3×5 pixel font (PNGImage's PixelFont).
import Foundation
import PNGImage

public enum DatasetPreview {
    /// Writes the prepared images of `instances` and `classes` and the sheet into `runDirectory`; returns how
    /// many images were written.
    @discardableResult
    public static func write(instances: DreamBoothDataset, classes: DreamBoothDataset?, to runDirectory: URL) throws -> Int {
        let root = runDirectory.appendingPathComponent("dataset")
        var cells: [(Image, String)] = []
        for set in [instances, classes].compactMap({ $0 }) {
            for i in set.examples.indices {
                let example = set.examples[i], size = set.size(of: i)
                let image = try example.image.centerCropped(width: size.width, height: size.height)
                let concept = set.concepts[example.concept]
                let folder = root.appendingPathComponent(concept.isRegularization ? "reg-" + concept.folderName : concept.folderName)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let stem = ((example.file as NSString).lastPathComponent as NSString).deletingPathExtension
                try PNG.write(image, to: folder.appendingPathComponent(stem + ".png").path)
                cells.append((image, "\(size.width)x\(size.height) \(example.prompt)"))
            }
        }
        try PNG.write(try contactSheet(cells), to: runDirectory.appendingPathComponent("dataset.png").path)
        return cells.count
    }

    /// Images scaled to fit 192 px (up or down), in rows of up to 6 cells, each with its label wrapped below it (3 lines).
    public static func contactSheet(_ cells: [(Image, String)], cell: Int = 192) throws -> Image {
        let columns = min(6, max(1, cells.count)), rows = (cells.count + columns - 1) / columns
        let lineHeight = 12, textLines = 3, gap = 8
        let cellWidth = max(cell, 8 * 12), cellHeight = cell + textLines * lineHeight + 4
        var canvas = LossCurve.Canvas(width: columns * (cellWidth + gap) + gap, height: rows * (cellHeight + gap) + gap)
        for (k, (image, label)) in cells.enumerated() {
            let scale = Double(cell) / Double(max(image.width, image.height))
            let w = max(1, Int(Double(image.width) * scale)), h = max(1, Int(Double(image.height) * scale))
            let shown = (w, h) == (image.width, image.height) ? image : try image.resized(width: w, height: h)
            let x0 = gap + (k % columns) * (cellWidth + gap), y0 = gap + (k / columns) * (cellHeight + gap)
            canvas.paste(shown, x: x0 + (cellWidth - w) / 2, y: y0 + (cell - h) / 2)
            for (line, text) in wrap(label.uppercased(), width: cellWidth / 8).prefix(textLines).enumerated() {
                canvas.text(text, x: x0, y: y0 + cell + 4 + line * lineHeight)
            }
        }
        return try canvas.image()
    }
}

/// `text` broken into lines of at most `width` characters, at spaces where possible.
func wrap(_ text: String, width: Int) -> [String] {
    var lines: [String] = [], line = ""
    for word in text.split(separator: " ") {
        var word = Substring(word)
        while word.count > width { // a word longer than a line is cut
            if !line.isEmpty { lines.append(line); line = "" }
            lines.append(String(word.prefix(width)))
            word = word.dropFirst(width)
        }
        if line.isEmpty { line = String(word) } else if line.count + 1 + word.count <= width { line += " " + word } else {
            lines.append(line)
            line = String(word)
        }
    }
    if !line.isEmpty { lines.append(line) }
    return lines
}

extension LossCurve.Canvas {
    /// Copies `image` with its top-left corner at (x, y), clipped to the canvas.
    mutating func paste(_ image: Image, x: Int, y: Int) {
        for row in 0..<image.height {
            for col in 0..<image.width {
                let i = 3 * (row * image.width + col)
                set(x + col, y + row, (image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]))
            }
        }
    }
}
