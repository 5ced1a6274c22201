
namespace Serving.Engine.Model;

// LoRA adapters served beside the weights (--lora-modules, --max-loras; loaded and unloaded between steps).
public sealed partial class LoadedModel
{
    /// The LoRA adapters steps may run sequences with (StepSequence.Adapter indexes them), in load order.
    internal IReadOnlyList<Lora.LoraAdapter> LoraAdapters => _loraAdapters;

    /// Loads PEFT LoRA adapters (vLLM's --lora-modules) onto the model's device; ModelLoadException names the one at
    /// fault. Not under tensor parallelism.
    public void LoadLoraAdapters(IReadOnlyList<Lora.LoraAdapterSource> sources, int maxRank, int? capacity = null)
    {
        if (capacity is { } most)
        {
            if (sources.Count > most) throw new ModelLoadException($"{sources.Count} LoRA adapters are given, --max-loras is {most}");
            MaxLoraAdapters = most;
        }
        if (_peers is not null && (sources.Count > 0 || capacity > 0))
            throw new ModelLoadException("LoRA adapters (--enable-lora) are not supported with --tensor-parallel-size above 1");
        if (Config.NumExperts > 0 && (sources.Count > 0 || capacity > 0))
            throw new ModelLoadException("LoRA adapters (--enable-lora) are not supported on a mixture-of-experts model");
        if (sources.Count == 0) return;
        foreach (var source in sources)
        {
            if (_loraAdapters.Any(a => a.Name == source.Name)) throw new ModelLoadException($"LoRA adapter name '{source.Name}' is given twice");
            AddLoraAdapter(LoadLoraAdapter(source, maxRank));
        }
    }

    /// Reads an adapter for this model onto its device (any thread; AddLoraAdapter then serves it).
    internal Lora.LoraAdapter LoadLoraAdapter(Lora.LoraAdapterSource source, int maxRank)
    {
        if (_peers is not null) throw new ModelLoadException("LoRA adapters (--lora-modules) are not supported with --tensor-parallel-size above 1");
        if (Config.NumExperts > 0) throw new ModelLoadException("LoRA adapters are not supported on a mixture-of-experts model");
        return Lora.LoraLoader.Load(source, Config, maxRank, Dtype, Device);
    }

    /// The most adapters served at once (--max-loras).
    public int MaxLoraAdapters { get; private set; } = int.MaxValue;

    /// Serves a loaded adapter from the next step on (the engine thread, between steps).
    internal void AddLoraAdapter(Lora.LoraAdapter adapter)
    {
        if (_loraAdapters.Any(a => a.Name == adapter.Name)) throw new InvalidOperationException($"LoRA adapter '{adapter.Name}' is already loaded");
        if (_loraAdapters.Count >= MaxLoraAdapters)
            throw new InvalidOperationException($"{MaxLoraAdapters} LoRA adapters are loaded, the most at once (--max-loras); unload one first");
        adapter.Key = $"{adapter.Name}#{++_loraLoads}";
        _loraAdapters.Add(adapter);
    }

    /// Stops serving an adapter and frees its weights (the engine thread, between steps, no sequence using it).
    internal bool RemoveLoraAdapter(string name)
    {
        var index = LoraAdapterIndex(name);
        if (index < 0) return false;
        _stream?.Synchronize();   // no step still queued on the model's stream reads the weights being freed
        _loraAdapters[index].Dispose();
        _loraAdapters.RemoveAt(index);
        return true;
    }

    /// The index of a loaded adapter (StepSequence.Adapter), or -1 when none has the name.
    public int LoraAdapterIndex(string name) => _loraAdapters.FindIndex(a => a.Name == name);
}
