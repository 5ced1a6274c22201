// Fused kernels of the Llama decoder, compiled by NVRTC at start-up (see FusedKernels.cs) with:
//   -DELEM_BF16=1|0      element type of activations, weights and the KV pool (bf16 or float32)
//   -DHEAD_DIM=<d>       head dimension (a multiple of 8, at most 256)
//   -DGROUP_SIZE=<g>     query heads per KV head (1 = MHA, numHeads = MQA)
// No CUDA headers are included: bf16 is handled as raw 16-bit words, so the source compiles with any
// NVRTC without an include path.
//
// Rounding: where Hugging Face's PyTorch code rounds an intermediate to the model dtype (residual add,
// normalized activations before the weight multiply, RoPE products, SiLU before the up multiply), these
// kernels round at the same places, so bf16 results track the reference implementation.

#if ELEM_BF16
typedef unsigned short elem_t;
__device__ __forceinline__ float to_f(elem_t x) { return __uint_as_float(((unsigned int)x) << 16); }
__device__ __forceinline__ elem_t from_f(float f) {
    unsigned int bits = __float_as_uint(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (elem_t)0x7fc0;  // NaN stays NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);                            // round to nearest even
    return (elem_t)(bits >> 16);
}
#else
typedef float elem_t;
__device__ __forceinline__ float to_f(elem_t x) { return x; }
__device__ __forceinline__ elem_t from_f(float f) { return f; }
#endif

// Rounds a float to the element type and back: the value PyTorch would hold after an op in that dtype.
__device__ __forceinline__ float rnd(float f) { return to_f(from_f(f)); }

#define VEC (16 / sizeof(elem_t))            // elements per 16-byte vector
struct __align__(16) vec_t { elem_t v[VEC]; };

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread gets the result. blockDim.x is a multiple of 32, at most 1024.
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
        s = warp_sum(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    return total;
}

// ---------------------------------------------------------------------------------------------------
// RMSNorm, optionally fused with the residual add. One block per token; hidden % VEC == 0.
//   residual (numTokens, hidden): with add, residual += x in place (rounded to elem_t) and normalized;
//   out      (numTokens, hidden) = weight * round(residual * rsqrt(mean(residual^2) + eps))
// ---------------------------------------------------------------------------------------------------
__device__ void rms_norm_row(const elem_t* __restrict__ row, const elem_t* __restrict__ weight,
                             elem_t* __restrict__ out, int hidden, float eps, float sum_sq) {
    const float inv = rsqrtf(block_sum(sum_sq) / hidden + eps);
    for (int c = threadIdx.x; c < hidden / (int)VEC; c += blockDim.x) {
        vec_t r = reinterpret_cast<const vec_t*>(row)[c];
        vec_t w = reinterpret_cast<const vec_t*>(weight)[c];
        vec_t o;
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) o.v[j] = from_f(to_f(w.v[j]) * rnd(to_f(r.v[j]) * inv));
        reinterpret_cast<vec_t*>(out)[c] = o;
    }
}

extern "C" __global__ void rms_norm(const elem_t* __restrict__ x, const elem_t* __restrict__ weight,
                                    elem_t* __restrict__ out, int hidden, float eps) {
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
// RoPE on q and k of the fused QKV output (in place, rotate-half layout as in Hugging Face Llama), and
// the rotated k plus v written into the paged pool at each token's slot. One block per token.
//   qkv        (numTokens, qkv_stride) holding [q: numHeads*D | k: numKVHeads*D | v: numKVHeads*D]
//   positions, slots (numTokens) int32; a negative slot (padding) writes nothing to the pool
//   cos, sin   (maxPositions, D/2) float32
//   k_cache, v_cache (numSlots = numBlocks*blockSize, numKVHeads, D)
// ---------------------------------------------------------------------------------------------------
extern "C" __global__ void rope_kv_write(elem_t* qkv, int qkv_stride, int num_heads, int num_kv_heads,
                                         const int* __restrict__ positions, const int* __restrict__ slots,
                                         const float* __restrict__ cos, const float* __restrict__ sin,
                                         elem_t* __restrict__ k_cache, elem_t* __restrict__ v_cache) {
    const int half = HEAD_DIM / 2;
    elem_t* row = qkv + (long)blockIdx.x * qkv_stride;
    const int pos = positions[blockIdx.x];
    const int slot = slots[blockIdx.x];
    const float* c_row = cos + (long)pos * half;
    const float* s_row = sin + (long)pos * half;
    const long kv_row = (long)slot * num_kv_heads * HEAD_DIM;
    const int rotated_pairs = (num_heads + num_kv_heads) * half;
    for (int p = threadIdx.x; p < rotated_pairs; p += blockDim.x) {
        const int head = p / half, i = p % half;
        elem_t* x = row + head * HEAD_DIM;
        const float c = rnd(c_row[i]), s = rnd(s_row[i]);
        const float x1 = to_f(x[i]), x2 = to_f(x[i + half]);
        const elem_t o1 = from_f(rnd(x1 * c) - rnd(x2 * s));
        const elem_t o2 = from_f(rnd(x2 * c) + rnd(x1 * s));
        x[i] = o1;
        x[i + half] = o2;
        if (head >= num_heads && slot >= 0) {
            elem_t* k = k_cache + kv_row + (head - num_heads) * HEAD_DIM;
            k[i] = o1;
            k[i + half] = o2;
        }
    }
    if (slot < 0) return;
    const vec_t* v_src = reinterpret_cast<const vec_t*>(row + (num_heads + num_kv_heads) * HEAD_DIM);
    vec_t* v_dst = reinterpret_cast<vec_t*>(v_cache + kv_row);
    for (int c = threadIdx.x; c < num_kv_heads * HEAD_DIM / (int)VEC; c += blockDim.x) v_dst[c] = v_src[c];
}

// ---------------------------------------------------------------------------------------------------
// SiLU(gate) * up from the fused gate/up output.
//   gate_up (numTokens, 2*ffn) = [gate | up];  out (numTokens, ffn);  ffn % VEC == 0
// ---------------------------------------------------------------------------------------------------
extern "C" __global__ void silu_mul(const elem_t* __restrict__ gate_up, elem_t* __restrict__ out,
                                    int ffn, long total_vectors) {
    const int row_vectors = ffn / VEC;
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < total_vectors; c += (long)gridDim.x * blockDim.x) {
        const long token = c / row_vectors;
        const int col = (int)(c % row_vectors);
        const vec_t* row = reinterpret_cast<const vec_t*>(gate_up + token * 2 * ffn);
        vec_t g = row[col], u = row[col + row_vectors], o;
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) {
            const float x = to_f(g.v[j]);
            o.v[j] = from_f(rnd(x / (1.f + __expf(-x))) * to_f(u.v[j]));
        }
        reinterpret_cast<vec_t*>(out)[c] = o;
    }
}
