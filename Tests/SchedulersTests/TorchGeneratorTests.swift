// Golden values from Tests/Reference/make_torch_rng_goldens.py (torch.randn / torch.rand with
// torch.Generator("cpu").manual_seed(seed)), compared bit for bit.
import XCTest
import TensorCore

final class TorchGeneratorTests: XCTestCase {
    struct Golden: Decodable {
        struct Draw: Decodable { let op: String; let shape: [Int]; let bits: [UInt32] }
        struct Case: Decodable { let name: String; let seed: UInt64; let draws: [Draw] }
        let cases: [Case]
    }

    func testMatchesTorchBitForBit() throws {
        let golden = try Fixture.load(Golden.self, "torch_rng.json")
        XCTAssertGreaterThan(golden.cases.count, 10)
        for c in golden.cases {
            var g = TorchGenerator(seed: c.seed)
            for (k, d) in c.draws.enumerated() {
                let t = d.op == "randn" ? g.randn(d.shape) : g.rand(d.shape)
                XCTAssertEqual(t.shape, d.shape)
                let got = t.scalars.map(\.bitPattern)
                let firstBad = zip(got, d.bits).enumerated().first { $0.element.0 != $0.element.1 }
                if let (i, pair) = firstBad {
                    XCTFail("\(c.name) seed \(c.seed) draw \(k) \(d.op)\(d.shape): element \(i) is "
                            + "\(Float(bitPattern: pair.0)), torch gives \(Float(bitPattern: pair.1))")
                    break
                }
            }
        }
    }

    func testCopyRestoresState() {
        var g = TorchGenerator(seed: 7)
        _ = g.randn([3])  // leaves a cached scalar normal
        let saved = g
        let a = g.randn([5]).scalars + g.randn([40]).scalars
        g = saved
        let b = g.randn([5]).scalars + g.randn([40]).scalars
        XCTAssertEqual(a, b)
        var other = TorchGenerator(seed: 8)
        XCTAssertNotEqual(a, other.randn([5]).scalars + other.randn([40]).scalars)
    }

    func testStateRoundTripsThroughCoding() throws {
        var g = TorchGenerator(seed: 99)
        _ = g.randn([7])
        let data = try JSONEncoder().encode(g)
        var h = try JSONDecoder().decode(TorchGenerator.self, from: data)
        XCTAssertEqual(g.randn([20]).scalars, h.randn([20]).scalars)
        XCTAssertEqual(g.randn([1]).scalars, h.randn([1]).scalars)
    }
}
