using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Engine.Tests.Templates;

/// Renders a template source against a fixed context. The expected strings in the Jinja*Tests theories
/// were produced by jinja2 3.1 (Debian python3-jinja2) with transformers' environment on this same context.
internal static class JinjaHarness
{
    const string ContextJson = """
        {
            "messages": [{"role": "system", "content": " sys "}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "n": 3}],
            "d": {"b": 2, "a": 1, "C": 3},
            "s": "Hello, World  ",
            "n": 7,
            "f": 2.5,
            "l": [3, 1, 2],
            "e": [],
            "u8": "naïve ✓ 🙂",
            "users": [{"name": "ann", "age": 30, "admin": true}, {"name": "Bob", "age": 25, "admin": false}, {"name": "cy", "age": 35}]
        }
        """;

    public static string Render(string source)
    {
        var context = JsonNode.Parse(ContextJson)!.AsObject();
        return new ChatTemplate(source).Render(context["messages"]!.DeepClone().AsArray(), false, null, null, context);
    }
}
