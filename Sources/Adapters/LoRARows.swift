// Batch-row selection and combination with their VJPs: the pieces that let image i of a batch use its
// own adapters while the base layer runs once over the whole batch.
import Autograd
import TensorCore

/// x [N, ...] → x[rows] [rows.count, ...] (rows in increasing order).
func selectRows(_ x: Variable, _ rows: [Int]) -> Variable {
    let n = x.shape[0], inner = x.value.count / max(n, 1)
    let outShape = [rows.count] + x.shape.dropFirst()
    let y = Tensor(shape: outShape) { out in
        x.value.withUnsafeBufferPointer { src in
            for (j, r) in rows.enumerated() {
                (out.baseAddress! + j * inner).update(from: src.baseAddress! + r * inner, count: inner)
            }
        }
    }
    let fullShape = x.shape
    return Variable.result(y, of: "selectRows", inputs: [x]) { g in
        [placeRows([(rows, g)], shape: fullShape)]
    }
}

/// Σ over parts of each part's values placed at its rows of an [N, ...] zero tensor; a part with
/// `rows == nil` covers every row. All parts have the same trailing shape.
func combineRows(_ parts: [(rows: [Int]?, value: Variable)], batch: Int) throws -> Variable {
    guard let first = parts.first else { throw AdaptersError.invalidRequest("combineRows: no parts") }
    if parts.count == 1, first.rows == nil { return first.value }
    let shape = [batch] + first.value.shape.dropFirst()
    let all = Array(0..<batch)
    for part in parts where part.value.shape != [part.rows?.count ?? batch] + shape.dropFirst() {
        throw AdaptersError.invalidRequest("combineRows: part \(part.value.shape) does not fit the batch \(shape)")
    }
    let y = placeRows(parts.map { ($0.rows ?? all, $0.value.value) }, shape: shape)
    let rowLists = parts.map { $0.rows }
    return Variable.result(y, of: "combineRows", inputs: parts.map(\.value)) { g in
        rowLists.map { rows in rows.map { selectRows(Variable(g), $0).value } ?? g }
    }
}

/// A zero tensor of `shape` with each part's rows added in.
private func placeRows(_ parts: [([Int], Tensor)], shape: [Int]) -> Tensor {
    let inner = shape.dropFirst().reduce(1, *)
    return Tensor(shape: shape) { out in
        out.initialize(repeating: 0)
        for (rows, value) in parts {
            value.withUnsafeBufferPointer { src in
                for (j, r) in rows.enumerated() {
                    let d = out.baseAddress! + r * inner, s = src.baseAddress! + j * inner
                    for k in 0..<inner { d[k] += s[k] }
                }
            }
        }
    }
}
