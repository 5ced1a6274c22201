using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// The role a chat answer carries (vLLM's rule): --response-role ("assistant" by default) after a generation prompt;
/// the final message's own role when the answer continues it (add_generation_prompt false). Whole and streamed alike.
public sealed class ResponseRoleTests
{
    static readonly object[] Question = [new { role = "user", content = "Capital of France?" }];
    static readonly object[] UnfinishedUserText = [new { role = "user", content = "Tell me about the capital of" }];

    static async Task<(string Whole, string Streamed)> RolesAsync(RunningServer server, object[] messages, bool? addGenerationPrompt = null,
        bool? continueFinalMessage = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = RunningServer.Model, ["messages"] = messages, ["max_tokens"] = 2,
            ["add_generation_prompt"] = addGenerationPrompt, ["continue_final_message"] = continueFinalMessage,
        };
        var (status, whole) = await server.PostAsync("/v1/chat/completions", body);
        Assert.Equal(200, status);
        body["stream"] = true;
        var (response, events) = await server.StreamAsync("/v1/chat/completions", body);
        using (response)
        using (events)
        {
            var first = await events.NextAsync();
            return (whole!["choices"]![0]!["message"]!["role"]!.GetValue<string>(), first!["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task AnswersAreTheAssistantsUnlessTheyContinueAnotherRolesMessage()
    {
        await using var server = await RunningServer.StartAsync();
        Assert.Equal(("assistant", "assistant"), await RolesAsync(server, Question));
        Assert.Equal(("user", "user"), await RolesAsync(server, UnfinishedUserText, addGenerationPrompt: false, continueFinalMessage: true));
        Assert.Equal(("user", "user"), await RolesAsync(server, UnfinishedUserText, addGenerationPrompt: false));
    }

    [Fact]
    public async Task ResponseRoleNamesTheRoleAfterAGenerationPrompt()
    {
        await using var server = await RunningServer.StartAsync(["--response-role", "narrator"]);
        Assert.Equal(("narrator", "narrator"), await RolesAsync(server, Question));
        Assert.Equal(("user", "user"), await RolesAsync(server, UnfinishedUserText, continueFinalMessage: true));
        // every choice carries it, and a client may send the answer back in the conversation
        var (status, body) = await server.PostAsync("/v1/chat/completions", new { model = RunningServer.Model, messages = Question, max_tokens = 2, n = 3 });
        Assert.Equal(200, status);
        Assert.All(body!["choices"]!.AsArray(), choice => Assert.Equal("narrator", choice!["message"]!["role"]!.GetValue<string>()));
        object[] replayed = [.. Question, new { role = "narrator", content = "Paris." }, new { role = "user", content = "And Spain?" }];
        Assert.Equal(("narrator", "narrator"), await RolesAsync(server, replayed));
        var (refused, error) = await server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new object[] { new { role = "bard", content = "Hi" } }, max_tokens = 2,
        });
        Assert.Equal(400, refused);
        Assert.Contains("narrator", error!["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public void AnEmptyResponseRoleIsRefused() =>
        Assert.Contains("response-role must not be empty",
            Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(["--response-role", " "])).Validate());
}
