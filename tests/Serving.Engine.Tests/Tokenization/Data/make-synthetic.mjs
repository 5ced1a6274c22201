// Builds the synthetic tokenizer.json files of this folder from the fixtures' tiny vocabularies and records
// what Hugging Face tokenizers (npm package "tokenizers" 0.23.2, the version the fixtures were made with)
// gives on them in expected.json. Run from this folder:
//   npm install tokenizers@0.23.2 && node make-synthetic.mjs ../../../../../shared/fixtures
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(path.resolve("node_modules") + "/");
const { Tokenizer } = require("tokenizers");
const fixtures = process.argv[2];

const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const byteLevel = (prefix, regex) => ({ type: "ByteLevel", add_prefix_space: prefix, trim_offsets: true, use_regex: regex });
const added = (id, content, special = true) =>
  ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });

function byteLevelBase() {
  return JSON.parse(fs.readFileSync(path.join(fixtures, "llama-gqa", "tokenizer.json"), "utf8"));
}

function renameVocab(model, names) {
  const vocab = {};
  for (const [token, id] of Object.entries(model.vocab)) vocab[names[id] ?? token] = id;
  model.vocab = vocab;
}

function llama3() {
  const t = byteLevelBase();
  const names = ["<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>"];
  renameVocab(t.model, names);
  t.added_tokens = names.map((n, i) => added(i, n));
  t.pre_tokenizer = { type: "Sequence", pretokenizers: [
    { type: "Split", pattern: { Regex: LLAMA3 }, behavior: "Isolated", invert: false }, byteLevel(false, false)] };
  t.model.ignore_merges = true;
  t.post_processor = { type: "Sequence", processors: [byteLevel(true, true), {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: names[0], type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: names[0], type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
           { SpecialToken: { id: names[0], type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { [names[0]]: { id: names[0], ids: [0], tokens: [names[0]] } } }] };
  t.decoder = byteLevel(true, true);
  return { tokenizer: t, config: { bos_token: names[0], eos_token: names[2], tokenizer_class: "PreTrainedTokenizerFast" } };
}

function qwen2() {
  const t = byteLevelBase();
  t.added_tokens.push(added(512, "<tool_call>", false));
  t.normalizer = { type: "NFC" };
  t.pre_tokenizer = { type: "Sequence", pretokenizers: [
    { type: "Split", pattern: { Regex: QWEN2 }, behavior: "Isolated", invert: false }, byteLevel(false, false)] };
  t.post_processor = byteLevel(false, false);
  t.model.merges = t.model.merges.map(([a, b]) => `${a} ${b}`);
  return { tokenizer: t, config: { bos_token: null, eos_token: "<|im_end|>", add_bos_token: false, tokenizer_class: "Qwen2Tokenizer" } };
}

// tokenizer.model pieces (SentencePiece ModelProto field 1: piece, score, type) of llama-sp-mqa.
function sentencePieces() {
  const data = fs.readFileSync(path.join(fixtures, "llama-sp-mqa", "tokenizer.model"));
  const varint = (b, i) => { let r = 0, s = 0; for (;;) { const c = b[i++]; r += (c & 0x7f) * 2 ** s; s += 7; if (c < 0x80) return [r, i]; } };
  const fields = (b) => { const out = []; let i = 0; while (i < b.length) { let k; [k, i] = varint(b, i);
    const f = Math.floor(k / 8), t = k & 7; let v;
    if (t === 0) [v, i] = varint(b, i); else if (t === 2) { let l; [l, i] = varint(b, i); v = b.subarray(i, i + l); i += l; }
    else if (t === 5) { v = b.readFloatLE(i); i += 4; } else { v = b.subarray(i, i + 8); i += 8; }
    out.push([f, v]); } return out; };
  return fields(data).filter(([f]) => f === 1).map(([, v]) => {
    const p = Object.fromEntries(fields(v)); return { piece: Buffer.from(p[1]).toString("utf8"), score: p[2] ?? 0, type: p[3] ?? 1 }; });
}

// Merges the way transformers' SentencePieceExtractor derives them: every split of a piece into two pieces,
// ordered by the score of the merged piece.
function sentencePieceModel() {
  const pieces = sentencePieces();
  const vocab = Object.fromEntries(pieces.map((p, id) => [p.piece, id]));
  const merges = [];
  pieces.forEach((p, id) => {
    if (p.type !== 1) return;
    const chars = Array.from(p.piece);
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join(""), r = chars.slice(i).join("");
      if (l in vocab && r in vocab) merges.push({ l, r, score: p.score, id });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.id - b.id || vocab[a.l] - vocab[b.l]);
  return { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map((m) => [m.l, m.r]) };
}

function sentencePieceBase() {
  return { version: "1.0", truncation: null, padding: null,
    added_tokens: ["<unk>", "<s>", "</s>"].map((n, i) => added(i, n)), model: sentencePieceModel(),
    post_processor: { type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } } } };
}

function llama2() {
  const t = sentencePieceBase();
  t.normalizer = { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] };
  t.pre_tokenizer = null;
  t.decoder = { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " },
    { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] };
  return { tokenizer: t, config: { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", add_bos_token: true, add_eos_token: false, tokenizer_class: "LlamaTokenizer" } };
}

function metaspace() {
  const t = sentencePieceBase();
  t.normalizer = null;
  t.pre_tokenizer = { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true };
  t.decoder = { type: "Sequence", decoders: [{ type: "ByteFallback" }, { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true }, { type: "Fuse" }] };
  return { tokenizer: t, config: { bos_token: "<s>", eos_token: "</s>", tokenizer_class: "PreTrainedTokenizerFast" } };
}

const TEXTS = ["Hello world", " leading space", "trailing space ", "two  spaces", "   ", "", "tabs\tand\nnewlines\n\n",
  "I'm sure it's 12345 ok, DON'T shout", "digits 1234567890 3.14159", "emoji 🙂🚀 and café naïve", "🙂abc 𝐀𝐁𝐂x 𝟏𝟐𝟑",
  "中文字符和日本語のテキスト", "Привет, мир!", "x = {'k': [1, 2]}\n    return x\r\n", "cafe\u0301 e\u0301", "aaaaaaaaaaaaaaaaaaaaa"];
const SPECIAL_TEXTS = {
  llama3: ["<|begin_of_text|><|start_header_id|>user\nhi<|eot_id|>", "a<|eot_id|>b <|eot_id|> c"],
  qwen2: ["<|im_start|>user\nhi<|im_end|>\n", "<tool_call>{\"a\": 1}<tool_call> x"],
  llama2: ["<s>Hello</s>", "Hello <s> world", "</s>"],
  metaspace: ["<s>Hello</s>", "Hello <s> world", "</s>"],
};

function randomStreams(vocabSize) {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % vocabSize;
  return Array.from({ length: 8 }, () => Array.from({ length: 24 }, next));
}

for (const [name, build] of Object.entries({ llama3, qwen2, llama2, metaspace })) {
  const { tokenizer, config } = build();
  fs.mkdirSync(name, { recursive: true });
  fs.writeFileSync(path.join(name, "tokenizer.json"), JSON.stringify(tokenizer, null, 1));
  fs.writeFileSync(path.join(name, "tokenizer_config.json"), JSON.stringify(config, null, 1));
  const hf = Tokenizer.fromFile(path.join(name, "tokenizer.json"));
  const encode = [];
  for (const text of [...TEXTS, ...SPECIAL_TEXTS[name]]) {
    const withSpecial = (await hf.encode(text, null, { addSpecialTokens: true })).getIds();
    const plain = (await hf.encode(text, null, { addSpecialTokens: false })).getIds();
    encode.push({ text, ids: plain, ids_with_special: withSpecial, decoded: await hf.decode(withSpecial, false),
      decoded_skip_special: await hf.decode(withSpecial, true) });
  }
  const decode = [];
  for (const ids of randomStreams(hf.getVocabSize(true)))
    decode.push({ ids, text: await hf.decode(ids, false), text_skip_special: await hf.decode(ids, true) });
  fs.writeFileSync(path.join(name, "expected.json"), JSON.stringify({ vocab_size: hf.getVocabSize(true), encode, decode }, null, 1));
  console.log(name, encode.length, "texts");
}
