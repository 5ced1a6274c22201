using System.Text.Json;
using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// Exaone4ForCausalLM (LG's EXAONE 4.0): OLMo 2's block (norms on the attention and MLP outputs only, no input norms,
/// Llama's RMSNorm) with Qwen3's q_norm and k_norm over each head, and hybrid attention: three sliding-window layers
/// (sliding_window, 4096) to each full one (layer_types, else sliding_window_pattern: every n-th layer full, or a
/// string of L and G repeated, the last layer full), the full layers without rotary embedding. Without a window
/// (sliding_window null, EXAONE 4.0-1.2B) every layer is full and turns by the rotary embedding.
internal sealed class Exaone4 : ModelArchitecture
{
    public override string Name => "Exaone4ForCausalLM";
    public override string ModelType => "exaone4";

    /// transformers' Exaone4Config for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["sliding_window"] = 4096, ["sliding_window_pattern"] = 4, ["rms_norm_eps"] = 1e-5, ["bos_token_id"] = 0, ["eos_token_id"] = 2,
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var layers = config.NumHiddenLayers;
        var windows = ModelConfigReader.LayerWindows(json, layers, SlidesByPattern(json, layers));
        var hybrid = json.Int("sliding_window") is not null;
        return config with
        {
            QkNorm = QkNorm.EachHead,
            PreNorms = false,
            SandwichNorms = true,
            LayerWindows = windows,
            // global NoPE: with a window, the full layers see positions through the mask alone
            NoRopeLayers = hybrid ? [.. Enumerable.Range(0, layers).Where(layer => windows[layer] is null)] : [],
        };
    }

    /// Which layers slide when layer_types is absent: sliding_window_pattern n makes every n-th layer full, a string
    /// ("LLLG") names each layer of a repeating run, L local and G global, and the last layer is full whatever it says.
    static Func<int, bool> SlidesByPattern(JsonFields json, int layers)
    {
        var pattern = json.Json["sliding_window_pattern"];
        if (pattern?.GetValueKind() == JsonValueKind.String)
        {
            var run = pattern.GetValue<string>();
            if (run.Length == 0 || run.Any(c => c is not ('L' or 'G')))
                throw ModelConfigException.Unsupported(json.File, "sliding_window_pattern", run, "a number, or a string of L and G");
            return layer => layer != layers - 1 && run[layer % run.Length] == 'L';
        }
        var every = json.Int("sliding_window_pattern") ?? 0;
        if (every < 0) throw new ModelConfigException($"{json.File}: field 'sliding_window_pattern' must not be negative, got {every}");
        return layer => every > 0 && (layer + 1) % every != 0;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.OutputNormedLayer(config, layer));
}
