using System.Text.Json;
using Grpc.Core;
using Json.Schema;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// sampling.structured_outputs on Generate: the HTTP API's constraints with the same semantics and refusals.
[Collection("server")]
public sealed class GrpcStructuredOutputTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    const string Schema = """
        {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 50},
         "word": {"enum": ["alpha", "beta"]}}, "required": ["ok", "n", "word"], "additionalProperties": false}
        """;

    static GenerateRequest Constrained(StructuredOutputs constraint, int seed) => new()
    {
        Model = RunningServer.Model, Text = "Answer:",
        Sampling = new SamplingParameters { MaxTokens = 150, Seed = seed, StructuredOutputs = constraint },
    };

    [Fact]
    public async Task AJsonSchemaConstrainsEverySequence()
    {
        var validator = JsonSchema.FromText(Schema);
        var request = Constrained(new StructuredOutputs { Json = Schema }, 4);
        request.Sampling.N = 3;
        var result = await GenerateResult.ReadAsync(_server.Grpc(), request);
        for (var index = 0; index < 3; index++)
        {
            var text = result.Text(index);
            Assert.True(validator.Evaluate(JsonDocument.Parse(text).RootElement).IsValid, text);
        }
        Assert.All(result.Final.Sequences, s => Assert.Equal(FinishReason.Stop, s.FinishReason));
    }

    [Fact]
    public async Task ChoiceAndRegexConstrainTheText()
    {
        var choice = await GenerateResult.ReadAsync(_server.Grpc(), Constrained(new StructuredOutputs { Choice = new Choices { Values = { "left", "right" } } }, 1));
        Assert.Contains(choice.Text(), new[] { "left", "right" });
        var regex = await GenerateResult.ReadAsync(_server.Grpc(), Constrained(new StructuredOutputs { Regex = "#[0-9a-f]{6}" }, 2));
        Assert.Matches("^#[0-9a-f]{6}$", regex.Text());
        var grammar = await GenerateResult.ReadAsync(_server.Grpc(), Constrained(new StructuredOutputs
        {
            Grammar = "root ::= color (\", \" color){0,2}\ncolor ::= \"red\" | \"green\" | \"#\" [0-9a-f]{3}",
        }, 3));
        Assert.Matches("^(red|green|#[0-9a-f]{3})(, (red|green|#[0-9a-f]{3})){0,2}$", grammar.Text());
    }

    [Theory]
    [InlineData("""{"type": "object", "propertyNames": {}}""", "structured_outputs.json")]
    [InlineData("{oops", "structured_outputs.json")]
    public async Task ABadSchemaIsInvalidArgumentNamingTheField(string schema, string param)
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(_server.Grpc(), Constrained(new StructuredOutputs { Json = schema }, 0)));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal(param, error.Trailers.GetValue("error-param"));
    }
}
