// Singular value decomposition of a low-rank product B·A (B [m, k], A [k, n], k small), in Double:
// thin QR of B and of Aᵀ (modified Gram–Schmidt, applied twice), then one-sided Jacobi on the k×k core
// R_B·R_Aᵀ. B·A = (Q_B·U) Σ (Q_A·V)ᵀ. Used to resize adapters to a lower rank.

/// A row-major Double matrix.
struct Matrix {
    var rows: Int
    var cols: Int
    var data: [Double]

    init(rows: Int, cols: Int, data: [Double]? = nil) {
        self.rows = rows
        self.cols = cols
        self.data = data ?? Array(repeating: 0, count: rows * cols)
    }

    subscript(r: Int, c: Int) -> Double {
        get { data[r * cols + c] }
        set { data[r * cols + c] = newValue }
    }

    var transposed: Matrix {
        var t = Matrix(rows: cols, cols: rows)
        for r in 0..<rows { for c in 0..<cols { t[c, r] = self[r, c] } }
        return t
    }

    static func * (a: Matrix, b: Matrix) -> Matrix {
        var out = Matrix(rows: a.rows, cols: b.cols)
        for i in 0..<a.rows {
            for p in 0..<a.cols {
                let x = a[i, p]
                if x == 0 { continue }
                for j in 0..<b.cols { out.data[i * b.cols + j] += x * b.data[p * b.cols + j] }
            }
        }
        return out
    }
}

/// Thin QR of an m×k matrix: Q [m, k] with orthonormal (or zero, for dependent) columns, R [k, k].
func thinQR(_ a: Matrix) -> (q: Matrix, r: Matrix) {
    var q = a
    var r = Matrix(rows: a.cols, cols: a.cols)
    for j in 0..<a.cols {
        for _ in 0..<2 {   // re-orthogonalise once: "twice is enough"
            for i in 0..<j {
                var dot = 0.0
                for row in 0..<a.rows { dot += q[row, i] * q[row, j] }
                r[i, j] += dot
                for row in 0..<a.rows { q[row, j] -= dot * q[row, i] }
            }
        }
        var norm = 0.0
        for row in 0..<a.rows { norm += q[row, j] * q[row, j] }
        norm = norm.squareRoot()
        r[j, j] = norm
        for row in 0..<a.rows { q[row, j] = norm > 1e-300 ? q[row, j] / norm : 0 }
    }
    return (q, r)
}

/// One-sided Jacobi SVD of a square k×k matrix: M = U·diag(s)·Vᵀ, singular values in decreasing order.
func jacobiSVD(_ m: Matrix) -> (u: Matrix, s: [Double], v: Matrix) {
    let n = m.cols
    var a = m
    var v = Matrix(rows: n, cols: n)
    for i in 0..<n { v[i, i] = 1 }
    for _ in 0..<60 {
        var rotated = false
        for p in 0..<n {
            for q in (p + 1)..<max(n, p + 1) {
                var alpha = 0.0, beta = 0.0, gamma = 0.0
                for r in 0..<a.rows { alpha += a[r, p] * a[r, p]; beta += a[r, q] * a[r, q]; gamma += a[r, p] * a[r, q] }
                guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot(), gamma != 0 else { continue }
                rotated = true
                let zeta = (beta - alpha) / (2 * gamma)
                let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                let c = 1 / (1 + t * t).squareRoot(), s = c * t
                for r in 0..<a.rows {
                    let x = a[r, p], y = a[r, q]
                    a[r, p] = c * x - s * y
                    a[r, q] = s * x + c * y
                }
                for r in 0..<n {
                    let x = v[r, p], y = v[r, q]
                    v[r, p] = c * x - s * y
                    v[r, q] = s * x + c * y
                }
            }
        }
        if !rotated { break }
    }
    var sigma = (0..<n).map { j in (0..<a.rows).reduce(0.0) { $0 + a[$1, j] * a[$1, j] }.squareRoot() }
    let order = (0..<n).sorted { sigma[$0] > sigma[$1] }
    var u = Matrix(rows: a.rows, cols: n), vs = Matrix(rows: n, cols: n)
    for (k, j) in order.enumerated() {
        for r in 0..<a.rows { u[r, k] = sigma[j] > 1e-300 ? a[r, j] / sigma[j] : 0 }
        for r in 0..<n { vs[r, k] = v[r, j] }
    }
    sigma = order.map { sigma[$0] }
    return (u, sigma, vs)
}

/// SVD of B·A for B [m, k], A [k, n]: U [m, k], singular values (k, decreasing), V [n, k].
func lowRankSVD(b: Matrix, a: Matrix) -> (u: Matrix, s: [Double], v: Matrix) {
    let (qb, rb) = thinQR(b)                       // B = Q_B R_B
    let (qa, ra) = thinQR(a.transposed)            // Aᵀ = Q_A R_A
    let core = rb * ra.transposed                  // [k, k]
    let (uc, s, vc) = jacobiSVD(core)
    return (qb * uc, s, qa * vc)
}
