namespace Serving.Deploy.Tests.Build;

/// SERV0001 (build/ScalarAnalyzer), run on code against the real TorchSharp: a number or an inline ToScalar() passed
/// where a call takes a Scalar is reported, at each such operand; a Scalar held through the call (a static field, a
/// `using` local, a field assigned in a constructor, a factory's return) is not, nor a number TorchSharp converts inside
/// (`x * 0.5`: SERV0002's, TorchSharpScalarMakersTests); a plain local is (nothing holds it past its last read).
public sealed class TemporaryScalarAnalyzerTests
{
    [Fact]
    public async Task ATemporaryScalarIsReportedWhereItIsPassedAndAHeldOneIsNot()
    {
        var reported = await AnalyzerSnippet.ReportedAsync("""
            using TorchSharp;
            using static TorchSharp.torch;

            sealed class Step
            {
                static readonly Scalar Zero = 0.ToScalar();
                readonly Scalar _scale;
                readonly Scalar? _cap;

                Step(double scale, double? cap) => (_scale, _cap) = (scale.ToScalar(), cap?.ToScalar());

                static Scalar Factory(double value) => value.ToScalar();

                Tensor Run(Tensor x, Tensor mask, long length, double limit)
                {
                    using var bound = limit.ToScalar();
                    var held = x.masked_fill(mask, Zero).mul(_scale).clamp_max(bound) * 0.5;
                    var positions = arange(length, ScalarType.Int64);
                    var filled = x.masked_fill(mask, 0);
                    var capped = x.clamp(-limit, limit.ToScalar());
                    var plain = limit.ToScalar();
                    var cast = x.add((Scalar)limit);
                    return held + positions + filled + capped + cast + x.pow(2).mul(plain);
                }
            }
            """, "SERV0001");
        // the plain local too: the JIT may end its life at its last read, before the native call reads its value
        Assert.Equal(["length", "0", "-limit", "limit.ToScalar()", "limit.ToScalar()", "(Scalar)limit", "2"], reported);
    }
}
