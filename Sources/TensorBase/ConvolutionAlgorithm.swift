// ConvolutionAlgorithm: which lowering the convolution kernels may choose.
import Foundation

public enum ConvolutionAlgorithm {
    /// Whether stride-1 3×3 convolutions (forward and input gradient) may run as Winograd
    /// (Sources/Kernels/WinogradConv.swift) instead of the implicit GEMM. On by default;
    /// `STYLEDIFFUSION_WINOGRAD=0` turns it off for a process (to compare), and tests bind it per task.
    @TaskLocal public static var winogradAllowed: Bool =
        ProcessInfo.processInfo.environment["STYLEDIFFUSION_WINOGRAD"] != "0"
    /// Whether Winograd may use 4×4 output tiles, F(4×4, 3×3), where the channel counts suit it; else 2×2 only.
    /// `STYLEDIFFUSION_WINOGRAD=2` keeps it to F(2×2, 3×3).
    @TaskLocal public static var winogradLargeTiles: Bool =
        ProcessInfo.processInfo.environment["STYLEDIFFUSION_WINOGRAD"] != "2"
}
