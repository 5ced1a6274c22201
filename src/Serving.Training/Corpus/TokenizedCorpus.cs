namespace Serving.Training.Corpus;

/// A prepared corpus folder: train.jsonl and heldout.jsonl (documents), tokenizer/ (tokenizer.json,
/// tokenizer_config.json), train.u16.br and heldout.u16.br (token streams, each document followed by the
/// end-of-text token), and manifest.json (packages, versions, licenses, counts).
internal sealed record TokenizedCorpus(string Directory)
{
    public string TokenizerDir => Path.Combine(Directory, "tokenizer");
    public string TrainTokens => Path.Combine(Directory, "train" + TokenFile.Extension);
    public string HeldOutTokens => Path.Combine(Directory, "heldout" + TokenFile.Extension);
    public string TrainDocuments => Path.Combine(Directory, "train.jsonl");
    public string HeldOutDocuments => Path.Combine(Directory, "heldout.jsonl");
    public string Manifest => Path.Combine(Directory, "manifest.json");

    public int[] ReadTrain() => TokenFile.Read(Require(TrainTokens));
    public int[] ReadHeldOut() => TokenFile.Read(Require(HeldOutTokens));

    static string Require(string path) => File.Exists(path) ? path
        : throw new ArgumentException($"{path} does not exist: prepare the corpus first (training/prepare-corpus.sh)");
}
