// Activations: SiLU, GELU (exact erf and tanh forms), quick-GELU, GEGLU; each forward beside its backward.
//
// Backward functions take the forward's input x and the output gradient dOut and return dx.
import TensorBase


@inline(__always) func siluv(_ x: Vec) -> Vec { x * sigmoidv(x) }

@inline(__always) func siluGradv(_ x: Vec) -> Vec {
    let s = sigmoidv(x)
    return s * (1 + x * (1 - s))
}

@inline(__always) func geluErfv(_ x: Vec) -> Vec { geluErfv(x, onePlusErf: 1 + erfv(x * 0.7071067811865476)) }

@inline(__always) func geluErfGradv(_ x: Vec) -> Vec { geluErfGradv(x, onePlusErf: 1 + erfv(x * 0.7071067811865476)) }

/// GELU(x) = x·Φ(x) given `t` = 1 + erf(x/√2) (= 2Φ(x)), for a caller that needs GELU and GELU′ of the same x.
@inline(__always) func geluErfv(_ x: Vec, onePlusErf t: Vec) -> Vec { 0.5 * x * t }

/// GELU′(x) = Φ(x) + x·φ(x) given `t` = 1 + erf(x/√2).
@inline(__always) func geluErfGradv(_ x: Vec, onePlusErf t: Vec) -> Vec {
    0.5 * t + x * (expv(-0.5 * x * x) * 0.3989422804014327)
}

// 0.5·x·(1 + tanh(u)) = x·sigmoid(2u), u = √(2/π)·(x + 0.044715·x³).
@inline(__always) func geluTanhv(_ x: Vec) -> Vec {
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    return x * sigmoidv(2 * u)
}

@inline(__always) func geluTanhGradv(_ x: Vec) -> Vec {
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    let s = sigmoidv(2 * u)                          // (1 + tanh u) / 2
    let du = 0.7978845608028654 * (1 + 0.134145 * x * x)
    return s + x * du * 2 * s * (1 - s)              // d/dx tanh(u)/2 = 2·s·(1-s)·du
}

@inline(__always) func quickGELUv(_ x: Vec) -> Vec { x * sigmoidv(1.702 * x) }

@inline(__always) func quickGELUGradv(_ x: Vec) -> Vec {
    let s = sigmoidv(1.702 * x)
    return s + 1.702 * x * s * (1 - s)
}

public enum Activation {
    /// x · sigmoid(x).
    public static func silu(_ x: Tensor) -> Tensor { Elementwise.map(x) { siluv($0) } }

    public static func siluBackward(_ dOut: Tensor, _ x: Tensor) throws -> Tensor {
        try check("siluBackward", dOut, x)
        return Elementwise.zip(dOut, x) { $0 * siluGradv($1) }
    }

    /// GELU: x·Φ(x) (exact, erf) or its tanh approximation.
    public static func gelu(_ x: Tensor, approximation: GELUApproximation = .none) -> Tensor {
        switch approximation {
        case .none: return Elementwise.map(x) { geluErfv($0) }
        case .tanh: return Elementwise.map(x) { geluTanhv($0) }
        }
    }

    public static func geluBackward(_ dOut: Tensor, _ x: Tensor,
                                    approximation: GELUApproximation = .none) throws -> Tensor {
        try check("geluBackward", dOut, x)
        switch approximation {
        case .none: return Elementwise.zip(dOut, x) { $0 * geluErfGradv($1) }
        case .tanh: return Elementwise.zip(dOut, x) { $0 * geluTanhGradv($1) }
        }
    }

    /// CLIP's quick-GELU: x · sigmoid(1.702 x).
    public static func quickGELU(_ x: Tensor) -> Tensor { Elementwise.map(x) { quickGELUv($0) } }

    public static func quickGELUBackward(_ dOut: Tensor, _ x: Tensor) throws -> Tensor {
        try check("quickGELUBackward", dOut, x)
        return Elementwise.zip(dOut, x) { $0 * quickGELUGradv($1) }
    }

    /// GEGLU as in diffusers' FeedForward: x [..., 2F] splits into (h, g) along the last dim,
    /// out [..., F] = h · gelu(g) (exact GELU).
    public static func geglu(_ x: Tensor) throws -> Tensor {
        let f = try gegluHalf(x)
        let rows = x.count / max(2 * f, 1)
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [f])
        let px = x.storage.pointer, po = out.storage.pointer
        Parallel.forEachChunked(count: rows, workers: Parallel.workers(for: rows * f, minWorkPerThread: 1 << 15)) { r in
            mapVectors(px + 2 * f * r, px + 2 * f * r + f, po + f * r, f) { h, g in h * geluErfv(g) }
        }
        return out
    }

    /// dx [..., 2F] of GEGLU: dh = dOut · gelu(g), dg = dOut · h · gelu'(g).
    public static func gegluBackward(_ dOut: Tensor, _ x: Tensor) throws -> Tensor {
        let f = try gegluHalf(x)
        guard dOut.shape == Array(x.shape.dropLast()) + [f] else {
            throw TensorError.shapeMismatch("gegluBackward: dOut \(dOut.shape) for input \(x.shape)")
        }
        let rows = x.count / max(2 * f, 1)
        let dx = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, pd = dOut.storage.pointer, pdx = dx.storage.pointer
        Parallel.forEachChunked(count: rows, workers: Parallel.workers(for: rows * f, minWorkPerThread: 1 << 15)) { r in
            let h = px + 2 * f * r, g = h + f, d = pd + f * r, dh = pdx + 2 * f * r, dg = dh + f
            // One pass: erf(g/√2) once for GELU(g) (dh) and GELU'(g) (dg).
            var i = 0
            while i < f {
                let n = min(16, f - i)
                let vd = n == 16 ? load(d + i) : loadPartial(d + i, n)
                let vh = n == 16 ? load(h + i) : loadPartial(h + i, n)
                let vg = n == 16 ? load(g + i) : loadPartial(g + i, n)
                let t = 1 + erfv(vg * 0.7071067811865476)
                let a = vd * geluErfv(vg, onePlusErf: t), b = vd * vh * geluErfGradv(vg, onePlusErf: t)
                if n == 16 { store(a, dh + i); store(b, dg + i) } else { storePartial(a, dh + i, n); storePartial(b, dg + i, n) }
                i += 16
            }
        }
        return dx
    }

    static func gegluHalf(_ x: Tensor) throws -> Int {
        guard let last = x.shape.last, last % 2 == 0 else {
            throw TensorError.shapeMismatch("geglu: last dimension of \(x.shape) must be even")
        }
        return last / 2
    }

    static func check(_ op: String, _ dOut: Tensor, _ x: Tensor) throws {
        guard dOut.shape == x.shape else {
            throw TensorError.shapeMismatch("\(op): dOut \(dOut.shape) and x \(x.shape) differ")
        }
    }
}
