using System.Text.RegularExpressions;
using System.Xml.Linq;
using Serving.Deploy.Tests.Support;

namespace Serving.Deploy.Tests.Docker;

/// What the Dockerfile promises: a build from this repository's sources in the SDK image, a CUDA or CPU
/// Ubuntu 24.04 runtime picked by one build argument, a non-root user, and an exec-form entrypoint that runs
/// the server assembly.
public sealed partial class DockerfileTests
{
    static readonly DockerfileModel Image = DeploymentFiles.Dockerfile();

    [Fact]
    public void EveryFileTheBuildCopiesFromTheContextExistsAndIsNotDockerIgnored()
    {
        var ignored = File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore"))
            .Where(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith('!')).Select(l => l.TrimEnd('/')).ToList();
        var copies = Image.Instructions.Where(i => i.Keyword == "COPY" && !i.Arguments.StartsWith("--from", StringComparison.Ordinal));
        foreach (var copy in copies)
            foreach (var source in copy.Arguments.Split(' ').SkipLast(1).Where(a => !a.StartsWith("--", StringComparison.Ordinal)))
            {
                Assert.True(Path.Exists(Path.Combine(RepoPaths.Root, source)), $"COPY {source}: not in the repository");
                Assert.DoesNotContain(source.TrimEnd('/'), ignored);
            }
    }

    /// The build stage copies everything the server's build reads through $(RepoRoot): the protos gRPC's code is
    /// generated from, the imported targets, the analyzer project every build runs (found from the server's project,
    /// Directory.Build.*, and each project or targets file those name in turn).
    [Fact]
    public void EveryPathTheServersBuildReadsIsCopiedIntoTheBuildStage()
    {
        var copied = Image.Instructions.Where(i => i.Keyword == "COPY" && !i.Arguments.StartsWith("--from", StringComparison.Ordinal))
            .SelectMany(i => i.Arguments.Split(' ').SkipLast(1)).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToList();
        bool IsCopied(string path) => copied.Any(source => source.EndsWith('/') ? path.StartsWith(source, StringComparison.Ordinal) : path == source);
        var pending = new Queue<string>(["Directory.Build.props", "Directory.Build.targets", "src/Serving.Server/Serving.Server.csproj"]);
        var read = new HashSet<string>();
        while (pending.TryDequeue(out var file))
        {
            if (!read.Add(file)) continue;
            Assert.True(IsCopied(file), $"the build reads {file}, which the Dockerfile does not copy");
            var text = File.ReadAllText(Path.Combine(RepoPaths.Root, file));
            foreach (Match m in RepoRootPath().Matches(text))
            {
                var path = m.Groups[1].Value.Split('*')[0];
                Assert.True(IsCopied(path) || IsCopied(path + "/"), $"{file} reads {path}, which the Dockerfile does not copy");
                if (path.EndsWith(".csproj", StringComparison.Ordinal) || path.EndsWith(".targets", StringComparison.Ordinal) || path.EndsWith(".props", StringComparison.Ordinal))
                    pending.Enqueue(path);
            }
            foreach (Match m in ProjectReference().Matches(text))
                pending.Enqueue(Path.GetRelativePath(RepoPaths.Root, Path.GetFullPath(Path.Combine(RepoPaths.Root, Path.GetDirectoryName(file)!, m.Groups[1].Value))).Replace('\\', '/'));
        }
        Assert.Contains("src/Serving.Engine/Serving.Engine.csproj", read);
        Assert.Contains("build/ScalarAnalyzer/ScalarAnalyzer.csproj", read);
    }

    [GeneratedRegex(@"\$\(RepoRoot\)([^""; ]+)")]
    private static partial Regex RepoRootPath();

    [GeneratedRegex(@"<ProjectReference Include=""(?!\$\(RepoRoot\))([^""]+)""")]
    private static partial Regex ProjectReference();

    [Fact]
    public void OneBuildArgumentSelectsTheCudaOrCpuUbuntu2404RuntimeAndTorchFlavour()
    {
        Assert.Contains(Image.Instructions, i => i.Keyword == "ARG" && i.Arguments == "TORCH_FLAVOUR=cuda");
        var stages = Image.Instructions.Where(i => i.Keyword == "FROM").Select(i => i.Arguments).ToList();
        Assert.Contains(stages, s => CudaRuntime().IsMatch(s) && s.EndsWith(" AS runtime-cuda", StringComparison.Ordinal));
        Assert.Contains("ubuntu:24.04 AS runtime-cpu", stages);
        Assert.Equal("runtime-${TORCH_FLAVOUR} AS final", stages[^1]);
        var publish = Image.Instructions.Single(i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish"));
        Assert.Contains("-p:TorchFlavour=${TORCH_FLAVOUR}", publish.Arguments);
        Assert.Contains("--self-contained", publish.Arguments); // the runtime bases carry no .NET
    }

    [Fact]
    public void TheEntrypointRunsTheServerAssemblyAsANonRootUser()
    {
        var project = XDocument.Load(Path.Combine(RepoPaths.Root, "src", "Serving.Server", "Serving.Server.csproj"));
        var assemblyName = project.Descendants("AssemblyName").Single().Value;
        Assert.Equal($"/app/{assemblyName}", Image.Entrypoint[0]);
        var user = Image.FinalStage.Last(i => i.Keyword == "USER").Arguments;
        Assert.Matches("^[1-9][0-9]*:[1-9][0-9]*$", user); // numeric, so runAsNonRoot can verify it
        Assert.Contains("EXPOSE", Image.FinalStage.Select(i => i.Keyword));
        Assert.Contains("VOLUME", Image.FinalStage.Select(i => i.Keyword));
    }

    [Fact]
    public void TheRuntimeInstallsIcuUnlessTheBuildMakesGlobalizationInvariant()
    {
        var invariant = new[] { "Directory.Build.props", "src/Serving.Server/Serving.Server.csproj" }
            .Select(f => XDocument.Load(Path.Combine(RepoPaths.Root, f)))
            .SelectMany(d => d.Descendants("InvariantGlobalization")).LastOrDefault()?.Value == "true";
        var installs = Image.FinalStage.Where(i => i.Keyword == "RUN" && i.Arguments.Contains("apt-get install"))
            .Select(i => i.Arguments).SingleOrDefault() ?? "";
        Assert.Contains("libssl3t64", installs);
        Assert.Equal(!invariant, installs.Contains("libicu", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu24\.04 ")]
    private static partial Regex CudaRuntime();
}
