using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Config;

/// --hf-overrides: config.json fields replaced before the config is read, on a checkpoint and on a preset, checked as
/// config.json is.
public sealed class HfOverridesTests
{
    [Fact]
    public void AFieldReplacesTheCheckpointsAndTheRestStays()
    {
        var plain = ModelConfig.Load(Fixtures.Dir("llama-gqa"));
        var longer = ModelConfig.Load(Fixtures.Dir("llama-gqa"), HfOverrides.Parse("""{"max_position_embeddings": 1024}"""));

        Assert.Equal(256, plain.MaxContextLength);
        Assert.Equal(1024, longer.MaxContextLength);
        Assert.Equal(plain with { MaxPositionEmbeddings = 1024, Architectures = longer.Architectures, EosTokenIds = longer.EosTokenIds }, longer);
        Assert.Equal(plain.Architectures, longer.Architectures);
        Assert.Equal(plain.EosTokenIds, longer.EosTokenIds);
    }

    [Fact]
    public void AnObjectIsMergedFieldByFieldAndNullRemovesAField()
    {
        var preset = ModelPresets.Get("llama3-8b");
        Assert.Equal(RopeType.Llama3, preset.Rope.Type);

        var scaled = HfOverrides.Parse("""{"rope_scaling": {"factor": 16.0}, "max_position_embeddings": 262144}""").ApplyTo(preset);
        Assert.Equal(preset.Rope with { Factor = 16.0 }, scaled.Rope);
        Assert.Equal(262144, scaled.MaxContextLength);

        var unscaled = HfOverrides.Parse("""{"rope_scaling": null}""").ApplyTo(preset);
        Assert.Equal(new RopeConfig { Theta = preset.Rope.Theta }, unscaled.Rope);
    }

    [Fact]
    public void AnOverrideTheEngineCannotServeIsRefusedNamingTheFlagAndTheField()
    {
        var error = Assert.Throws<ModelConfigException>(() =>
            ModelConfig.Load(Fixtures.Dir("llama-gqa"), HfOverrides.Parse("""{"num_key_value_heads": 3}""")));
        Assert.Contains("--hf-overrides", error.Message);
        Assert.Contains("num_key_value_heads", error.Message);
        Assert.Throws<ModelConfigException>(() => HfOverrides.Parse("""{"hidden_size": "wide"}""").ApplyTo(ModelPresets.Get("tiny-gqa")));
    }

    [Theory]
    [InlineData("{\"max_position_embeddings\": ", "not valid JSON")]
    [InlineData("[1, 2]", "must be a JSON object")]
    [InlineData("32768", "must be a JSON object")]
    public void AValueThatIsNotAJsonObjectIsAnArgumentError(string json, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => HfOverrides.Parse(json));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void APresetServedWithOverridesHasTheirShape()
    {
        using var model = ModelLoader.Load("tiny-gqa", "float32", hfOverrides: HfOverrides.Parse("""{"max_position_embeddings": 32768}"""));
        Assert.Equal(32768, model.Config.MaxContextLength);
    }
}
