// Embedding lookup: gather rows of a table; the VJP scatter-adds the output gradient into those rows.
import TensorCore

/// Rows `ids` of `table` [V, D] → [ids.count, D] reshaped to `shape + [D]` (`shape` defaults to [ids.count]).
/// Throws when an id is outside 0..<V or `shape` does not hold `ids.count` elements.
public func embedding(_ ids: [Int], shape: [Int]? = nil, table: Variable) throws -> Variable {
    let t = table.value
    guard t.rank == 2 else { throw AutogradError.invalidInput("embedding: table must be [V, D], got \(t.shape)") }
    let (v, d) = (t.shape[0], t.shape[1])
    let idShape = shape ?? [ids.count]
    guard Tensor.elementCount(idShape) == ids.count else {
        throw AutogradError.invalidInput("embedding: \(ids.count) ids do not fill shape \(idShape)")
    }
    if let bad = ids.first(where: { $0 < 0 || $0 >= v }) {
        throw AutogradError.invalidInput("embedding: id \(bad) is outside the table's \(v) rows")
    }
    let y = t.withUnsafeBufferPointer { src in
        Tensor(shape: idShape + [d]) { out in
            for (r, id) in ids.enumerated() {
                (out.baseAddress! + r * d).update(from: src.baseAddress! + id * d, count: d)
            }
        }
    }
    return Variable.result(y, of: "embedding", inputs: [table]) { g in
        GradMode.note("embedding.dTable")
        var dt = Tensor(zeros: [v, d])
        g.withUnsafeBufferPointer { src in
            dt.withUnsafeMutableBufferPointer { dst in
                for (r, id) in ids.enumerated() {
                    let s = src.baseAddress! + r * d, o = dst.baseAddress! + id * d
                    for j in 0..<d { o[j] += s[j] }
                }
            }
        }
        return [dt]
    }
}
