// ConvolutionAlgorithm: which lowering the convolution kernels may choose.
import Foundation

public enum ConvolutionAlgorithm {
    /// Whether stride-1 3×3 convolutions (forward and input gradient) may run as Winograd F(2×2, 3×3)
    /// (Sources/Kernels/WinogradConv.swift) instead of the implicit GEMM. On by default;
    /// `STYLEDIFFUSION_WINOGRAD=0` turns it off for a process (to compare the two), and tests bind it per task.
    @TaskLocal public static var winogradAllowed: Bool =
        ProcessInfo.processInfo.environment["STYLEDIFFUSION_WINOGRAD"] != "0"
}
