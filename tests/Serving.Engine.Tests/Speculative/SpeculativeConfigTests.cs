using Serving.Engine.Speculative;

namespace Serving.Engine.Tests.Speculative;

public sealed class SpeculativeConfigTests
{
    [Fact]
    public void ReadsVllmsNgramConfig()
    {
        var config = SpeculativeConfig.Parse("""{"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4, "prompt_lookup_min": 2}""");
        Assert.Equal(new SpeculativeConfig { NumSpeculativeTokens = 5, PromptLookupMin = 2, PromptLookupMax = 4 }, config);
        // one bound stands for both; neither: 5 and 5; the older spelling "model": "[ngram]"
        Assert.Equal((3, 3), Bounds(SpeculativeConfig.Parse("""{"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}""")));
        Assert.Equal((2, 2), Bounds(SpeculativeConfig.Parse("""{"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_min": 2}""")));
        Assert.Equal((5, 5), Bounds(SpeculativeConfig.Parse("""{"model": "[ngram]", "num_speculative_tokens": 2}""")));
        Assert.Equal(8, SpeculativeConfig.Parse("""{"method": "ngram", "num_speculative_tokens": 2, "disable_by_batch_size": 8}""").DisableByBatchSize);
        Assert.Null(SpeculativeConfig.Parse("""{"method": "ngram", "num_speculative_tokens": 2, "disable_by_batch_size": null}""").DisableByBatchSize);
    }

    static (int, int) Bounds(SpeculativeConfig config) => (config.PromptLookupMin, config.PromptLookupMax);

    [Fact]
    public void ReadsVllmsSuffixConfigWithItsDefaults()
    {
        var defaults = SpeculativeConfig.Parse("""{"method": "suffix"}""");
        Assert.Equal(new SpeculativeConfig { Method = SpeculativeMethod.Suffix, NumSpeculativeTokens = 24 }, defaults);   // k: the tree depth
        Assert.Equal((24, 10000, 1.0, 0.1), (defaults.SuffixMaxTreeDepth, defaults.SuffixMaxCachedRequests, defaults.SuffixMaxSpecFactor, defaults.SuffixMinTokenProb));
        var set = SpeculativeConfig.Parse("""
            {"method": "suffix", "num_speculative_tokens": 8, "suffix_decoding_max_tree_depth": 32, "suffix_decoding_max_cached_requests": 0,
             "suffix_decoding_max_spec_factor": 2.5, "suffix_decoding_min_token_prob": 0.3, "disable_by_batch_size": 16}
            """);
        Assert.Equal(new SpeculativeConfig
        {
            Method = SpeculativeMethod.Suffix, NumSpeculativeTokens = 8, SuffixMaxTreeDepth = 32, SuffixMaxCachedRequests = 0,
            SuffixMaxSpecFactor = 2.5, SuffixMinTokenProb = 0.3, DisableByBatchSize = 16,
        }, set);
        Assert.StartsWith("suffix, 8 speculative tokens", set.ToString());
    }

    [Theory]
    [InlineData("""{"method": "eagle", "model": "yuhuili/EAGLE-LLaMA3-Instruct-8B", "num_speculative_tokens": 5}""", "method \"eagle\" is not supported")]
    [InlineData("""{"model": "meta-llama/Llama-3.2-1B", "num_speculative_tokens": 5}""", "method (missing)")]
    [InlineData("""{"method": "ngram"}""", "num_speculative_tokens is required")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": 0}""", "num_speculative_tokens must be 1..64")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": "4"}""", "num_speculative_tokens must be an integer")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 3, "prompt_lookup_max": 2}""", "prompt_lookup_max (2) must be at least prompt_lookup_min (3)")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": 4, "draft_tensor_parallel_size": 1}""", "'draft_tensor_parallel_size' is not supported")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": 4, "disable_by_batch_size": 0}""", "disable_by_batch_size must be at least 1")]
    [InlineData("""{"method": "suffix", "suffix_decoding_min_token_prob": 1.5}""", "suffix_decoding_min_token_prob must be in 0..1")]
    [InlineData("""{"method": "suffix", "suffix_decoding_max_tree_depth": 2}""", "suffix_decoding_max_tree_depth must be at least 3")]
    [InlineData("""{"method": "suffix", "suffix_decoding_max_cached_requests": -1}""", "suffix_decoding_max_cached_requests must not be negative")]
    [InlineData("""{"method": "suffix", "suffix_decoding_max_spec_factor": 0}""", "suffix_decoding_max_spec_factor must be positive")]
    [InlineData("""{"method": "suffix", "prompt_lookup_max": 3}""", "do not go with method \"suffix\"")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": 4, "suffix_decoding_max_tree_depth": 8}""", "do not go with method \"ngram\"")]
    [InlineData("""[1]""", "must be a JSON object")]
    [InlineData("""{"method": """, "is not JSON")]
    public void RefusesWhatItCannotRunNamingWhy(string json, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => SpeculativeConfig.Parse(json));
        Assert.Contains(message, error.Message);
        Assert.StartsWith("speculative-config", error.Message);
    }
}
