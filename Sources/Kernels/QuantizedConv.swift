// Convolution over a frozen 4-bit weight: the implicit-GEMM convolution of ConvKernels.swift whose packed weight
// slivers are decoded from bitsandbytes' 4-bit codes (the packer of QuantizedGEMM.swift), so the F32 weight never
// exists, not even one layer's at a time.
//
// The weight `[kh, kw, Cin, Cout]` is quantized over its flat HWIO order (blocks of `blockSize` weights running
// along Cout, then Cin, then the taps), so it reads as a `[taps * Cin, Cout]` matrix. Forward: each sliver of
// NR output channels is decoded as `[taps * Cin][NR]`, exactly what `packConvWeight` packs from an F32 weight;
// 1x1 and few-channel (im2col) convolutions run the dequantizing GEMM. Input gradient: the flipped, transposed
// kernel (`w'[dy, dx, co, ci] = w[kh-1-dy, kw-1-dx, ci, co]`) is decoded sliver by sliver the same way, read
// transposed from the codes. A frozen weight needs no weight gradient. Every path sums each output element in
// the order its F32 counterpart does, so the results equal `conv2d` / `conv2dBackwardInput` on the dequantized
// weight bit for bit when those run as implicit GEMM (`ConvolutionAlgorithm.winogradAllowed` off). Winograd is
// not used here: its transformed weight would be 16/9 of the F32 weight that 4-bit storage exists to avoid.
import TensorBase

/// 4-bit convolution forward: `[N, H, W, Cin]` * a `[kh, kw, Cin, Cout]` weight (+ bias `[Cout]`) ->
/// `[N, Ho, Wo, Cout]`. The weight is bitsandbytes' 4-bit format over its flat HWIO order (`packed`, `scales`,
/// `code` and `blockSize` as for `dequantizingSGEMM`); it is decoded into the packed slivers, never whole.
public func quantizedConv2d(_ input: Tensor, packed: UnsafePointer<UInt8>, scales: UnsafePointer<Float>,
                            code: UnsafePointer<Float>, blockSize: Int, weightShape: [Int], bias: Tensor? = nil,
                            stride: Int = 1, padding: Int = 0) throws -> Tensor {
    let g = try Conv2DShape(input: input.shape, weight: weightShape, stride: stride, padding: padding,
                            op: "quantizedConv2d")
    if let bias, bias.shape != [g.outChannels] {
        throw TensorError.shapeMismatch("quantizedConv2d: bias \(bias.shape) does not fit weight \(weightShape)")
    }
    let w = QuantizedOperand(packed: packed, scales: scales, code: code, blockSize: blockSize, cols: g.outChannels,
                             transposed: false)
    return input.withUnsafeBufferPointer { x in
        withOptionalPointer(bias) { b in
            Tensor(shape: g.outputShape) { out in
                quantizedConvForward(g, input: x.baseAddress!, weight: w, bias: b, output: out.baseAddress!)
            }
        }
    }
}

/// Gradient of `quantizedConv2d` with respect to its input, given the output gradient `[N, Ho, Wo, Cout]`.
public func quantizedConv2dBackwardInput(_ gradOutput: Tensor, packed: UnsafePointer<UInt8>,
                                         scales: UnsafePointer<Float>, code: UnsafePointer<Float>, blockSize: Int,
                                         weightShape: [Int], inputShape: [Int], stride: Int = 1,
                                         padding: Int = 0) throws -> Tensor {
    let g = try Conv2DShape(input: inputShape, weight: weightShape, stride: stride, padding: padding,
                            op: "quantizedConv2dBackwardInput")
    guard gradOutput.shape == g.outputShape else {
        throw TensorError.shapeMismatch("quantizedConv2dBackwardInput: output gradient \(gradOutput.shape) should be "
                                        + "\(g.outputShape) for \(g)")
    }
    let w = QuantizedOperand(packed: packed, scales: scales, code: code, blockSize: blockSize, cols: g.outChannels,
                             transposed: false)
    return gradOutput.withUnsafeBufferPointer { dy in
        Tensor(shape: inputShape) { dx in
            quantizedConvBackwardInput(g, gradOutput: dy.baseAddress!, weight: w, gradInput: dx.baseAddress!)
        }
    }
}

/// `conv2dForward` with the weight decoded per sliver.
func quantizedConvForward(_ g: Conv2DShape, input: UnsafePointer<Float>, weight w: QuantizedOperand,
                          bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
    let cout = g.outChannels, cin = g.inChannels, taps = g.kernelHeight * g.kernelWidth
    let pixels = g.batch * g.outHeight * g.outWidth
    /// `output = rows · weight (+ bias)` with `rows` [pixels, k] and the weight read as a [k, Cout] matrix.
    func gemmOverPixels(_ rows: UnsafePointer<Float>, k: Int) {
        if let bias {
            for r in 0..<pixels { (output + r * cout).update(from: bias, count: cout) }
        }
        dequantizingProduct(m: pixels, n: cout, k: k, a: rows, lda: k, weight: w, c: output, ldc: cout,
                            accumulate: bias != nil)
    }
    lowerConvForward(g, input: input, gemmOverPixels: gemmOverPixels) { xpad in
        convImplicitGEMM(xpad, kernelHeight: g.kernelHeight, kernelWidth: g.kernelWidth, stride: g.stride,
                         outHeight: g.outHeight, outWidth: g.outWidth, weight: nil, outChannels: cout,
                         bias: bias, output: output) { j0, nr, dst in
            decodeConvSliver(w, rows: taps * cin, j0: j0, nr: nr, into: dst)
        }
    }
}

/// `conv2dBackwardInput` with the flipped, transposed weight decoded per sliver.
func quantizedConvBackwardInput(_ g: Conv2DShape, gradOutput: UnsafePointer<Float>, weight w: QuantizedOperand,
                                gradInput: UnsafeMutablePointer<Float>) {
    let kh = g.kernelHeight, kw = g.kernelWidth, cin = g.inChannels, cout = g.outChannels
    var transposed = w
    transposed.transposed = true
    if g.isPointwise {   // dX = dY · Wᵀ, W stored [Cin, Cout]
        dequantizingProduct(m: g.batch * g.height * g.width, n: cin, k: cout, a: gradOutput, lda: cout,
                            weight: transposed, c: gradInput, ldc: cin, accumulate: false)
        return
    }
    let packer = { (sources: [Int]) -> ConvWeightPacker in
        { j0, nr, dst in decodeTransposedConvSliver(w, sourceTaps: sources, cin: cin, j0: j0, nr: nr, into: dst) }
    }
    if g.stride > 1 {
        conv2dBackwardInputByPhases(g, gradOutput: gradOutput, weight: nil, gradInput: gradInput,
                                    transposedPacker: packer)
        return
    }
    let (padded, byTaps) = paddedOutputGradient(g, gradOutput)
    defer { padded.deallocate() }
    let hp = padded.height, wp = padded.width
    let sources = (0..<(kh * kw)).map { t in (kh - 1 - t / kw) * kw + (kw - 1 - t % kw) }
    if byTaps {
        // Few pixels, many channels: dX = Σ_tap dY_tap · W[flipped tap]ᵀ, one dequantizing GEMM per tap that
        // decodes only that tap's [Cin, Cout] codes; row p of dY_tap is the padded gradient pixel the tap
        // reads for input pixel p.
        let pixels = g.batch * g.height * g.width
        let rowsBuffer = ScratchBuffer<Float>(count: pixels * cout), rows = rowsBuffer.pointer
        defer { rowsBuffer.release() }
        for (tap, source) in sources.enumerated() {
            gatherTapRows(padded.pointer, batch: g.batch, height: g.height, width: g.width, paddedHeight: hp,
                          paddedWidth: wp, channels: cout, dy: tap / kw, dx: tap % kw, stride: 1, into: rows)
            var tapWeight = transposed
            tapWeight.offset = w.offset + source * cin * cout
            dequantizingProduct(m: pixels, n: cin, k: cout, a: rows, lda: cout, weight: tapWeight, c: gradInput,
                                ldc: cin, accumulate: tap > 0)
        }
        return
    }
    convImplicitGEMM(padded, kernelHeight: kh, kernelWidth: kw, stride: 1, outHeight: g.height, outWidth: g.width,
                     weight: nil, outChannels: cin, bias: nil, output: gradInput, packer: packer(sources))
}

/// Columns `j0..<j0+nr` of the 4-bit `[rows, w.cols]` matrix `w` as `[rows][nr]`, zero-padded (the sliver
/// `packConvWeight` makes from an F32 weight).
func decodeConvSliver(_ w: QuantizedOperand, rows: Int, j0: Int, nr: Int, into dst: UnsafeMutablePointer<Float>) {
    let valid = min(nr, w.cols - j0)
    let table = allocateCodeTable()
    defer { table.deallocate() }
    for r in 0..<rows {
        decodeFourBitRun(w, start: r * w.cols + j0, count: valid, into: dst + r * nr, stride: 1, table: table)
        if valid < nr { (dst + r * nr + valid).update(repeating: 0, count: nr - valid) }
    }
}

/// Weight taps decoded per chunk of this many Cout rows of a transposed sliver (8 KB of a 32-wide sliver stays
/// in L1 while its columns are written one by one).
let quantizedConvTransposeChunk = 64

/// The sliver of the flipped, transposed kernel for input channels `j0..<j0+nr`: tap t holds
/// `w[sourceTaps[t]]ᵀ` (Cout x Cin), so row `t * Cout + co`, column j is `w[sourceTaps[t], j0 + j, co]`;
/// `[taps * Cout][nr]`, zero-padded. Each weight row (one Cin, contiguous along Cout) decodes as a column.
func decodeTransposedConvSliver(_ w: QuantizedOperand, sourceTaps: [Int], cin: Int, j0: Int, nr: Int,
                                into dst: UnsafeMutablePointer<Float>) {
    let cout = w.cols, valid = min(nr, cin - j0)
    let table = allocateCodeTable()
    defer { table.deallocate() }
    for (t, source) in sourceTaps.enumerated() {
        var co0 = 0
        while co0 < cout {
            let count = min(quantizedConvTransposeChunk, cout - co0)
            let base = dst + (t * cout + co0) * nr
            for j in 0..<valid {
                decodeFourBitRun(w, start: (source * cin + j0 + j) * cout + co0, count: count, into: base + j,
                                 stride: nr, table: table)
            }
            if valid < nr {
                for r in 0..<count { (base + r * nr + valid).update(repeating: 0, count: nr - valid) }
            }
            co0 += count
        }
    }
}
