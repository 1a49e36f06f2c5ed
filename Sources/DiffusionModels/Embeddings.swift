// Timestep embeddings of the UNet.
// Port of diffusers 0.42 `models/embeddings.py`: `get_timestep_embedding`, `Timesteps`, `TimestepEmbedding`.
import Autograd
import NN
import Foundation
import TensorCore

/// Sinusoidal timestep features (no parameters): t [N] → [N, numChannels].
///
/// exponent_i = −ln(10000)·i / (half − downscaleFreqShift), emb = [sin(t·e^exponent), cos(t·e^exponent)],
/// swapped to [cos, sin] when `flipSinToCos`; an odd width gets a zero column. Computed in Float32 like torch.
public final class Timesteps: Module {
    public let numChannels: Int
    public let flipSinToCos: Bool
    public let downscaleFreqShift: Float

    public init(numChannels: Int, flipSinToCos: Bool, downscaleFreqShift: Float) {
        self.numChannels = numChannels
        self.flipSinToCos = flipSinToCos
        self.downscaleFreqShift = downscaleFreqShift
        super.init()
    }

    public func callAsFunction(_ timesteps: [Float]) -> Variable {
        let half = numChannels / 2
        let lnMaxPeriod = Float(9.210340371976184)  // ln(10000)
        let frequencies = (0..<half).map { i in
            exp(-lnMaxPeriod * Float(i) / (Float(half) - downscaleFreqShift))
        }
        let value = Tensor(shape: [timesteps.count, numChannels]) { out in
            out.initialize(repeating: 0)
            for (n, t) in timesteps.enumerated() {
                let row = out.baseAddress! + n * numChannels
                let (sinAt, cosAt) = flipSinToCos ? (half, 0) : (0, half)
                for i in 0..<half {
                    let arg = t * frequencies[i]
                    row[sinAt + i] = sin(arg)
                    row[cosAt + i] = cos(arg)
                }
            }
        }
        return Variable(value)
    }
}

/// linear_1 → SiLU → linear_2: [N, inChannels] → [N, timeEmbedDim].
public final class TimestepEmbedding: Module {
    public let linear_1: Linear   // [timeEmbedDim, inChannels]
    public let linear_2: Linear   // [timeEmbedDim, timeEmbedDim]

    public init(inChannels: Int, timeEmbedDim: Int) {
        linear_1 = Linear(inFeatures: inChannels, outFeatures: timeEmbedDim)
        linear_2 = Linear(inFeatures: timeEmbedDim, outFeatures: timeEmbedDim)
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        try linear_2(silu(linear_1(x)))
    }
}
