using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Serving.Build;

namespace Serving.Deploy.Tests.Build;

/// The Scalar analyzer (build/ScalarAnalyzer) run on a snippet compiled against the real TorchSharp.
static class AnalyzerSnippet
{
    /// The source text of each place the snippet is reported with diagnosticId, in source order; the snippet must compile.
    public static async Task<string[]> ReportedAsync(string source, string diagnosticId)
    {
        var tree = CSharpSyntaxTree.ParseText(source);
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Append(typeof(TorchSharp.Scalar).Assembly.Location)
            .Select(path => MetadataReference.CreateFromFile(path));
        var compilation = CSharpCompilation.Create("snippet", [tree], references, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var diagnostics = await compilation.WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new TemporaryScalarAnalyzer())).GetAnalyzerDiagnosticsAsync();
        return diagnostics.Where(d => d.Id == diagnosticId).OrderBy(d => d.Location.SourceSpan.Start)
            .Select(d => d.Location.SourceTree!.ToString()[d.Location.SourceSpan.Start..d.Location.SourceSpan.End]).ToArray();
    }
}
