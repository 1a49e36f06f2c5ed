// NCHW ↔ NHWC conversion at the API edge: images and parity goldens come in checkpoint order (NCHW),
// the models compute in NHWC.
import TensorCore

public enum FeatureLayout {
    /// [N, C, H, W] → [N, H, W, C].
    public static func nhwc(fromNCHW x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("nhwc(fromNCHW:) needs a rank-4 tensor, got \(x.shape)") }
        return try Layout.permute(x, [0, 2, 3, 1])
    }

    /// [N, H, W, C] → [N, C, H, W].
    public static func nchw(fromNHWC x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("nchw(fromNHWC:) needs a rank-4 tensor, got \(x.shape)") }
        return try Layout.permute(x, [0, 3, 1, 2])
    }
}
