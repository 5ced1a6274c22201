// Fused kernels of the decoder, compiled by NVRTC at start-up after element_types.cu (see FusedKernels.cs) with:
//   -DELEM_TYPE=0|1|2    element type of activations and weights: float32, bfloat16, float16
//   -DCACHE_TYPE=0|1|2|3 element type of the KV pool (--kv-cache-dtype): the same codes, 3 = FP8 E4M3 (sm_89+),
//                        stored as value / scale with one scale per layer for K and one for V
//   -DHEAD_DIM=<d>       head dimension (a multiple of 8, at most 256)
//   -DCACHE_VEC_BYTES=<n> bytes of one pool copy in the attention kernel: min(16, HEAD_DIM x pool element size)
//   -DROTARY_DIM=<r>     leading dimensions of each head that rotary embedding turns (even, at most HEAD_DIM)
//   -DGROUP_SIZE=<g>     query heads per KV head (1 = MHA, numHeads = MQA)
//   -DNORM_WEIGHT=0|1|2  how a norm's weight w scales the float32 normalisation n (ModelConfig.NormWeight):
//                        w x round(n) (Llama's), round(w x n) (olmo2's, cohere's), round((1 + w) x n) (gemma's)
//   -DNORM_CENTERED=0|1  norms about the row's mean, LayerNorm without bias (cohere's)
//   -DROPE_INTERLEAVED=0|1 rotary pairs (i, i + ROTARY_DIM/2) (Llama's rotate-half) or (2i, 2i + 1) (GLM's, cohere's, ERNIE's)
//   -DROPE_PRECISION=0|1|2 where rotary embedding rounds (ModelConfig.RotaryPrecision): cos, sin and each product in the
//                        element type (Llama's); in float32 by rounded cos and sin (cohere's); in float32 (ERNIE's)
//   -DATTN_SOFTCAP=<c>f  attention soft-capping, c x tanh(score / c) on the scaled scores (gemma2's); 0.0f: none
//
// Rounding: where Hugging Face's PyTorch code rounds an intermediate to the model dtype (residual add,
// normalized activations before the weight multiply, RoPE products, SiLU before the up multiply), these
// kernels round at the same places, so bf16 results track the reference implementation.

// gemma2's attention soft-capping of a score in the units of cap (the attention kernels' scores are natural-log or
// log2 units: cap is ATTN_SOFTCAP or ATTN_SOFTCAP x log2 e); the score itself without capping
__device__ __forceinline__ float soft_cap(float score, float cap) {
    return ATTN_SOFTCAP > 0.f ? cap * tanhf(score / cap) : score;
}

// Sum over the block (element_types.cu's block_reduce); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }

// ---------------------------------------------------------------------------------------------------
// RMSNorm, optionally fused with the residual add. One block per token; hidden % VEC == 0.
//   residual (numTokens, hidden): with add, residual += x in place (rounded to elem_t) and normalized;
//   out      (numTokens, hidden) = weight * round(residual * rsqrt(mean(residual^2) + eps)), the weight applied as
//            NORM_WEIGHT says; with NORM_CENTERED, residual - mean(residual) in place of residual (cohere's LayerNorm)
// ---------------------------------------------------------------------------------------------------
__device__ __forceinline__ elem_t weigh_norm(float w, float n) {
#if NORM_WEIGHT == 1
    return from_f(w * n);
#elif NORM_WEIGHT == 2
    return from_f((1.f + w) * n);
#else
    return from_f(w * rnd(n));
#endif
}

// sum_sq: this thread's share of the row's sum of squares (unused when NORM_CENTERED, which makes two passes of its own)
__device__ void rms_norm_row(const elem_t* __restrict__ row, const elem_t* __restrict__ weight,
                             elem_t* __restrict__ out, int hidden, float eps, float sum_sq) {
#if NORM_CENTERED
    float sum = 0.f;
    for (int c = threadIdx.x; c < hidden / (int)VEC; c += blockDim.x) {
        vec_t r = reinterpret_cast<const vec_t*>(row)[c];
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) sum += to_f(r.v[j]);
    }
    const float mean = block_sum(sum) / hidden;
    sum_sq = 0.f;
    for (int c = threadIdx.x; c < hidden / (int)VEC; c += blockDim.x) {
        vec_t r = reinterpret_cast<const vec_t*>(row)[c];
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) { const float f = to_f(r.v[j]) - mean; sum_sq += f * f; }
    }
#else
    const float mean = 0.f;
#endif
    const float inv = rsqrtf(block_sum(sum_sq) / hidden + eps);
    for (int c = threadIdx.x; c < hidden / (int)VEC; c += blockDim.x) {
        vec_t r = reinterpret_cast<const vec_t*>(row)[c];
        vec_t w = reinterpret_cast<const vec_t*>(weight)[c];
        vec_t o;
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) o.v[j] = weigh_norm(to_f(w.v[j]), (to_f(r.v[j]) - mean) * inv);
        reinterpret_cast<vec_t*>(out)[c] = o;
    }
}

extern "C" __global__ void rms_norm(const elem_t* __restrict__ x, const elem_t* __restrict__ weight,
                                    elem_t* __restrict__ out, int hidden, float eps) {
    wait_for_previous_kernel();
    const elem_t* row = x + (long)blockIdx.x * hidden;
    float sum_sq = 0.f;
    for (int c = threadIdx.x; c < hidden / (int)VEC; c += blockDim.x) {
        vec_t r = reinterpret_cast<const vec_t*>(row)[c];
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) { float f = to_f(r.v[j]); sum_sq += f * f; }
    }
    rms_norm_row(row, weight, out + (long)blockIdx.x * hidden, hidden, eps, sum_sq);
}

extern "C" __global__ void add_rms_norm(elem_t* residual, const elem_t* __restrict__ x,
                                        const elem_t* __restrict__ weight, elem_t* __restrict__ out,
                                        int hidden, float eps) {
    wait_for_previous_kernel();
    elem_t* row = residual + (long)blockIdx.x * hidden;
    const elem_t* add = x + (long)blockIdx.x * hidden;
    float sum_sq = 0.f;
    for (int c = threadIdx.x; c < hidden / (int)VEC; c += blockDim.x) {
        vec_t r = reinterpret_cast<vec_t*>(row)[c];
        vec_t a = reinterpret_cast<const vec_t*>(add)[c];
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) {
            r.v[j] = from_f(to_f(r.v[j]) + to_f(a.v[j]));
            float f = to_f(r.v[j]);
            sum_sq += f * f;
        }
        reinterpret_cast<vec_t*>(row)[c] = r;  // this thread re-reads exactly these vectors below
    }
    rms_norm_row(row, weight, out + (long)blockIdx.x * hidden, hidden, eps, sum_sq);
}

// ---------------------------------------------------------------------------------------------------
// RMSNorm over each query and key head of the fused QKV output, in place (qwen3's and gemma3's q_norm and k_norm,
// before rotary embedding; with NORM_CENTERED about the head's mean, Command R+'s LayerNorm), the weight applied as
// NORM_WEIGHT says. One block per token, one warp per head.
//   qkv (numTokens, qkv_stride) = [q: numHeads*D | k: numKVHeads*D | v]
//   q_weight, k_weight: (D) that every head shares (weight_head_stride 0), or a weight per head, (numHeads, D) and
//                       (numKVHeads, D) (weight_head_stride D)
// ---------------------------------------------------------------------------------------------------
// One head's RMSNorm in place by one warp (lane: the thread's lane).
__device__ void head_rms_norm_of(elem_t* x, const elem_t* __restrict__ w, float eps, int lane) {
#if NORM_CENTERED
    float sum = 0.f;
    for (int d = lane; d < HEAD_DIM; d += 32) sum += to_f(x[d]);
    const float mean = warp_sum(sum) / HEAD_DIM;
#else
    const float mean = 0.f;
#endif
    float sum_sq = 0.f;
    for (int d = lane; d < HEAD_DIM; d += 32) { const float f = to_f(x[d]) - mean; sum_sq += f * f; }
    const float inv = rsqrtf(warp_sum(sum_sq) / HEAD_DIM + eps);
    for (int d = lane; d < HEAD_DIM; d += 32) x[d] = weigh_norm(to_f(w[d]), (to_f(x[d]) - mean) * inv);
}

// Head `head` of one token's row (query heads first, then key heads) normed by one warp.
__device__ void head_rms_norm_at(elem_t* row, int head, int num_heads, const elem_t* __restrict__ q_weight,
                                 const elem_t* __restrict__ k_weight, int weight_head_stride, float eps) {
    const elem_t* w = head < num_heads ? q_weight + head * weight_head_stride
                                       : k_weight + (head - num_heads) * weight_head_stride;
    head_rms_norm_of(row + head * HEAD_DIM, w, eps, threadIdx.x & 31);
}

// Every query and key head of one token's row normed, a warp a head (the block's warps share the heads).
__device__ void head_rms_norm_row(elem_t* row, int num_heads, int num_kv_heads, const elem_t* __restrict__ q_weight,
                                  const elem_t* __restrict__ k_weight, int weight_head_stride, float eps) {
    for (int head = threadIdx.x >> 5; head < num_heads + num_kv_heads; head += blockDim.x >> 5)
        head_rms_norm_at(row, head, num_heads, q_weight, k_weight, weight_head_stride, eps);
}

extern "C" __global__ void head_rms_norm(elem_t* qkv, int qkv_stride, int num_heads, int num_kv_heads,
                                         const elem_t* __restrict__ q_weight, const elem_t* __restrict__ k_weight,
                                         int weight_head_stride, float eps) {
    wait_for_previous_kernel();
    head_rms_norm_row(qkv + (long)blockIdx.x * qkv_stride, num_heads, num_kv_heads, q_weight, k_weight, weight_head_stride, eps);
}

// ---------------------------------------------------------------------------------------------------
// K and v rows of the fused QKV output written into the paged pool at the token's slot, converted to the pool's
// element type: stored = value / scale (scales = this layer's [k_scale, v_scale]; 1 for float pools); the KV heads
// from first_kv_head, kv_heads of them. The dimensions of each k head below first_k_dim are left out (rope_kv_write
// stores its rotated ones itself).
// ---------------------------------------------------------------------------------------------------
__device__ __forceinline__ cache_t to_pool(elem_t x, float inv_scale) { return from_float<cache_t>(to_f(x) * inv_scale); }

__device__ __forceinline__ long pool_row(int slot, int num_kv_heads) { return (long)slot * num_kv_heads * HEAD_DIM; }

__device__ void write_kv_row(const elem_t* row, int num_heads, int num_kv_heads, int first_kv_head, int kv_heads, int slot,
                             const float* __restrict__ scales, cache_t* __restrict__ k_cache, cache_t* __restrict__ v_cache,
                             int first_k_dim) {
    const elem_t* k_src = row + num_heads * HEAD_DIM;
    const elem_t* v_src = k_src + num_kv_heads * HEAD_DIM;
    const long kv_row = pool_row(slot, num_kv_heads);
    const float k_inv = 1.f / scales[0], v_inv = 1.f / scales[1];
    const int end = (first_kv_head + kv_heads) * HEAD_DIM;
    for (int c = first_kv_head * HEAD_DIM + threadIdx.x; c < end; c += blockDim.x) {
        if (c % HEAD_DIM >= first_k_dim) k_cache[kv_row + c] = to_pool(k_src[c], k_inv);
        v_cache[kv_row + c] = to_pool(v_src[c], v_inv);
    }
}

// The row's head (query heads first, then key heads) that is local head j in [0, group] of KV head kv_head's block:
// its query heads kv_head * group + j, then (j == group) its k head.
__device__ __forceinline__ int group_head(int j, int kv_head, int group, int num_heads) {
    return j < group ? kv_head * group + j : num_heads + kv_head;
}

// ---------------------------------------------------------------------------------------------------
// RoPE on q and k of the fused QKV output (in place, over the first ROTARY_DIM dimensions of each head: in
// rotate-half pairs as in Hugging Face Llama and Phi-3, or in interleaved pairs with ROPE_INTERLEAVED as in GLM),
// and the token's k and v written into the paged pool at its slot as write_kv_row writes them (the same values, bit
// for bit). One block per token and KV head (grid (numTokens, numKVHeads)): the block rotates the KV head's group of
// query heads (numHeads / numKVHeads of them, those attention reads with this KV head) and its k head, a thread per
// rotated pair (up to 1024): the pairs are independent, and a block that loops over them waits on one global load
// after another, so a token's heads are spread over blocks rather than looped over in one. A thread that rotates a
// pair of k writes it to the pool from its registers; write_kv_row then copies the head's v and k's unrotated
// dimensions, which the rotation does not touch, so no barrier sits between the two.
//   qkv        (numTokens, qkv_stride) holding [q: numHeads*D | k: numKVHeads*D | v: numKVHeads*D]
//   positions, slots (numTokens) int32; a negative slot writes nothing to the pool (rotation only)
//   cos, sin   (maxPositions, ROTARY_DIM/2) float32;  scales: this layer's [k_scale, v_scale]
//   k_cache, v_cache (numSlots = numBlocks*blockSize, numKVHeads, D) of cache_t
//   q_norm, k_norm  head_rms_norm's weights (and norm_head_stride, norm_eps its) to norm each q and k head before the
//                   rotation (qwen3's q_norm and k_norm): one launch for the two; null: no norm
// ---------------------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(1024) rope_kv_write(elem_t* qkv, int qkv_stride, int num_heads, int num_kv_heads,
                                         const int* __restrict__ positions, const int* __restrict__ slots,
                                         const float* __restrict__ cos, const float* __restrict__ sin,
                                         const float* __restrict__ scales,
                                         cache_t* __restrict__ k_cache, cache_t* __restrict__ v_cache,
                                         const elem_t* __restrict__ q_norm, const elem_t* __restrict__ k_norm,
                                         int norm_head_stride, float norm_eps) {
    wait_for_previous_kernel(/*let_next_in*/ false);         // decode attention follows
    const int half = ROTARY_DIM / 2;
    elem_t* row = qkv + (long)blockIdx.x * qkv_stride;
    const int kv_head = blockIdx.y, group = num_heads / num_kv_heads;
    if (q_norm != nullptr) {   // head_rms_norm first, as its own launch would (the same values, bit for bit)
        for (int j = threadIdx.x >> 5; j <= group; j += blockDim.x >> 5)
            head_rms_norm_at(row, group_head(j, kv_head, group, num_heads), num_heads, q_norm, k_norm, norm_head_stride, norm_eps);
        __syncthreads();
    }
    const int pos = positions[blockIdx.x];
    const int slot = slots == nullptr ? -1 : slots[blockIdx.x];
    const float k_inv = 1.f / scales[0];
    const float* c_row = cos + (long)pos * half;
    const float* s_row = sin + (long)pos * half;
    const int rotated_pairs = (group + 1) * half;
    for (int p = threadIdx.x; p < rotated_pairs; p += blockDim.x) {
        const int head = group_head(p / half, kv_head, group, num_heads), i = p % half;
#if ROPE_INTERLEAVED
        const int d1 = 2 * i, d2 = 2 * i + 1;
#else
        const int d1 = i, d2 = i + half;
#endif
        elem_t* x = row + head * HEAD_DIM;
        const float x1 = to_f(x[d1]), x2 = to_f(x[d2]);
#if ROPE_PRECISION == 2
        const float c = c_row[i], s = s_row[i];
#else
        const float c = rnd(c_row[i]), s = rnd(s_row[i]);
#endif
#if ROPE_PRECISION == 0
        const elem_t r1 = from_f(rnd(x1 * c) - rnd(x2 * s)), r2 = from_f(rnd(x2 * c) + rnd(x1 * s));
#else
        // float32 products rounded once (no fused multiply-add: PyTorch's float ops round each product)
        const elem_t r1 = from_f(__fmul_rn(x1, c) - __fmul_rn(x2, s)), r2 = from_f(__fmul_rn(x2, c) + __fmul_rn(x1, s));
#endif
        x[d1] = r1;
        x[d2] = r2;
        if (slot >= 0 && head >= num_heads) {
            cache_t* k = k_cache + pool_row(slot, num_kv_heads) + (head - num_heads) * HEAD_DIM;
            k[d1] = to_pool(r1, k_inv);
            k[d2] = to_pool(r2, k_inv);
        }
    }
    if (slot >= 0) write_kv_row(row, num_heads, num_kv_heads, kv_head, 1, slot, scales, k_cache, v_cache, ROTARY_DIM);
}

// The K/V write alone, for rows rope_kv_write already rotated (the step that calibrates FP8 scales rotates, measures
// the rotated K and V, sets the scales, then writes). One block per token.
extern "C" __global__ void __launch_bounds__(1024) kv_write(const elem_t* qkv, int qkv_stride, int num_heads, int num_kv_heads,
                                    const int* __restrict__ slots, const float* __restrict__ scales,
                                    cache_t* __restrict__ k_cache, cache_t* __restrict__ v_cache) {
    wait_for_previous_kernel();
    const int slot = slots[blockIdx.x];
    if (slot >= 0)
        write_kv_row(qkv + (long)blockIdx.x * qkv_stride, num_heads, num_kv_heads, 0, num_kv_heads, slot, scales, k_cache, v_cache, 0);
}

// Rows of the pool gathered into a dense tensor in the model's element type, dequantized: out[i] = pool[slots[i]] *
// scale, for the prefill attention (SDPA) over a sequence's context. pool (numSlots, numKVHeads, D) of cache_t;
// out (numSlots gathered, numKVHeads, D) of elem_t. One block per gathered slot.
extern "C" __global__ void gather_kv(const cache_t* __restrict__ pool, const int* __restrict__ slots, int num_kv_heads,
                                     const float* __restrict__ scale, elem_t* __restrict__ out) {
    wait_for_previous_kernel();
    const long from = (long)slots[blockIdx.x] * num_kv_heads * HEAD_DIM, to = (long)blockIdx.x * num_kv_heads * HEAD_DIM;
    const float s = *scale;
    for (int c = threadIdx.x; c < num_kv_heads * HEAD_DIM; c += blockDim.x) out[to + c] = from_f(to_float(pool[from + c]) * s);
}

// ---------------------------------------------------------------------------------------------------
// gpt-oss's activation of its experts' gate/up rows, each row's expert's bias added first, rounded where transformers'
// ops in the model's type round:
//   gate_up (rows, 2*ffn), gate and up interleaved (gate at the even columns); bias (experts, 2*ffn);
//   expert_of_row (rows) int64; out (rows, ffn) = (clamp(up, -limit, limit) + 1) x g sigmoid(1.702 g), g = min(gate, limit)
// ---------------------------------------------------------------------------------------------------
// one gate and up of the model's type, their biases added first (shared with expert_linear.cu's _clamped_glu epilogue)
__device__ __forceinline__ elem_t clamped_glu_of(elem_t gate_in, elem_t up_in, elem_t gate_bias, elem_t up_bias, float limit) {
    const float gate = fminf(rnd(to_f(gate_in) + to_f(gate_bias)), limit);
    const float up = fminf(fmaxf(rnd(to_f(up_in) + to_f(up_bias)), -limit), limit);
    // __fdividef: within 2 ulp of float32's 1 / x, rounded to 16 bits after; the exact division's slow path is a call,
    // which spills expert_linear_clamped_glu's registers around it
    const float glu = rnd(gate * rnd(__fdividef(1.f, 1.f + __expf(-rnd(gate * 1.702f)))));
    return from_f(rnd(up + 1.f) * glu);
}

extern "C" __global__ void clamped_glu(const elem_t* __restrict__ gate_up, const elem_t* __restrict__ bias,
                                       const long* __restrict__ expert_of_row, elem_t* __restrict__ out,
                                       int ffn, long total, float limit) {
    wait_for_previous_kernel();
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < total; c += (long)gridDim.x * blockDim.x) {
        const long row = c / ffn;
        const int pair = 2 * (int)(c % ffn);
        const elem_t* in = gate_up + row * 2 * ffn + pair;
        const elem_t* b = bias + expert_of_row[row] * 2 * ffn + pair;
        out[c] = clamped_glu_of(in[0], in[1], b[0], b[1], limit);
    }
}

// silu(gate) x up of a gate and an up of the model's type, rounded where transformers' act_fn(gate) * up rounds
__device__ __forceinline__ elem_t silu_and_mul(elem_t gate, elem_t up) {
    const float x = to_f(gate);
    return from_f(rnd(x / (1.f + __expf(-x))) * to_f(up));
}

// ---------------------------------------------------------------------------------------------------
// SiLU(gate) * up from the fused gate/up output.
//   gate_up (numTokens, 2*ffn) = [gate | up];  out (numTokens, ffn);  ffn % VEC == 0
// ---------------------------------------------------------------------------------------------------
extern "C" __global__ void silu_mul(const elem_t* __restrict__ gate_up, elem_t* __restrict__ out,
                                    int ffn, long total_vectors) {
    wait_for_previous_kernel();
    const int row_vectors = ffn / VEC;
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < total_vectors; c += (long)gridDim.x * blockDim.x) {
        const long token = c / row_vectors;
        const int col = (int)(c % row_vectors);
        const vec_t* row = reinterpret_cast<const vec_t*>(gate_up + token * 2 * ffn);
        vec_t g = row[col], u = row[col + row_vectors], o;
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) o.v[j] = silu_and_mul(g.v[j], u.v[j]);
        reinterpret_cast<vec_t*>(out)[c] = o;
    }
}
