# Greedy fixture prompts through the server on CUDA, interleaved with other requests so that steps mix prefill
# chunks and decodes: every fixture prompt must still give transformers' greedy_16.
import json, sys, threading, time, random, urllib.request
port, fixture = int(sys.argv[1]), sys.argv[2]
ref = json.load(open(f"{fixture}/reference.json"))
def complete(ids, n, out, key):
    body = json.dumps({"model": "llama-gqa", "prompt": ids, "max_tokens": n, "temperature": 0, "ignore_eos": True,
                       "return_token_ids": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"content-type": "application/json"})
    out[key] = json.load(urllib.request.urlopen(req, timeout=120))["choices"][0]["token_ids"]
rng = random.Random(0); out = {}; threads = []
for i in range(40):
    if i % 8 == 0 and i // 8 < len(ref["prompts"]):
        p = ref["prompts"][i // 8]; t = threading.Thread(target=complete, args=(p["input_ids"], 16, out, f"fx{i//8}"))
    else:
        t = threading.Thread(target=complete, args=([rng.randrange(3, 500) for _ in range(rng.randrange(20, 120))], rng.randrange(8, 64), out, i))
    t.start(); threads.append(t); time.sleep(0.003)
for t in threads: t.join()
ok = sum(out[f"fx{k}"] == p["greedy_16"] for k, p in enumerate(ref["prompts"]))
print(f"mixed-step greedy check on CUDA float32: {ok}/{len(ref['prompts'])} fixture prompts match greedy_16; {len(out)} requests done")
