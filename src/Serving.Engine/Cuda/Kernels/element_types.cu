// Element types and the helpers every kernel module starts with (compiled first, see FusedKernels.SourceNames and
// Fp8Products.SourceNames), with:
//   -DELEM_TYPE=0|1|2    element type of activations and weights: float32, bfloat16, float16
//   -DCACHE_TYPE=0|1|2|3 element type of the KV pool: the same codes, 3 = FP8 E4M3 (sm_89+), whose conversions
//                        are compiled only then
// No CUDA headers are included: bf16 and f16 are raw 16-bit words converted by hand or by one PTX instruction,
// so the source compiles with any NVRTC without an include path.

struct bf16_t { unsigned short bits; };
struct f16_t { unsigned short bits; };
struct fp8_t { unsigned char bits; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return __uint_as_float(((unsigned int)x.bits) << 16); }
__device__ __forceinline__ float to_float(f16_t x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}


#if CACHE_TYPE == 3
// FP8 E4M3 through the hardware conversions (sm_89+): two e4m3 in 16 bits <-> two f16 (the low byte is the low half)
__device__ __forceinline__ float to_float(fp8_t x) {
    unsigned int h2;
    const unsigned short pair = x.bits;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"(pair));
    return to_float(f16_t{(unsigned short)(h2 & 0xffffu)});
}
#endif

template <typename T> __device__ T from_float(float f);
template <> __device__ __forceinline__ float from_float<float>(float f) { return f; }
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float f) {
    unsigned int bits = __float_as_uint(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return bf16_t{0x7fc0};   // NaN stays NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);                            // round to nearest even
    return bf16_t{(unsigned short)(bits >> 16)};
}
template <> __device__ __forceinline__ f16_t from_float<f16_t>(float f) {
    f16_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
    return h;
}

#if CACHE_TYPE == 3
template <> __device__ __forceinline__ fp8_t from_float<fp8_t>(float f) {
    unsigned short pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.f), "f"(f));   // f lands in the low byte
    return fp8_t{(unsigned char)(pair & 0xffu)};
}
#endif

#if ELEM_TYPE == 1
typedef bf16_t elem_t;
#elif ELEM_TYPE == 2
typedef f16_t elem_t;
#else
typedef float elem_t;
#endif

#if CACHE_TYPE == 1
typedef bf16_t cache_t;
#elif CACHE_TYPE == 2
typedef f16_t cache_t;
#elif CACHE_TYPE == 3
typedef fp8_t cache_t;
#else
typedef float cache_t;
#endif

__device__ __forceinline__ float to_f(elem_t x) { return to_float(x); }
__device__ __forceinline__ elem_t from_f(float f) { return from_float<elem_t>(f); }

// Rounds a float to the element type and back: the value PyTorch would hold after an op in that dtype.
__device__ __forceinline__ float rnd(float f) { return to_f(from_f(f)); }

#define VEC (16 / sizeof(elem_t))            // elements per 16-byte vector
struct __align__(16) vec_t { elem_t v[VEC]; };

// Programmatic dependent launch (sm_90+; FusedKernels launches every kernel with it there): a kernel's blocks may be
// scheduled while the kernel before it on the stream drains its last blocks, and wait here, before reading or writing
// anything, until that kernel has finished and its writes are visible. Then the kernel lets the next one be scheduled
// the same way (let_next_in): that takes effect once every block of this one has passed here (its last wave), so the
// next kernel's blocks take the multiprocessors this one leaves and are ready the moment it ends; since a kernel lets
// its successor in only after its own wait, at most one kernel waits ahead. Every kernel below starts with it. A no-op
// for a kernel launched without the attribute (the next kernel, cuBLAS's, then starts as usual), compiled out below
// sm_90. Decode attention is not let in early (rotary + KV write, attention and the partitions' reduce pass false):
// its blocks, scheduled while the kernel before them still holds multiprocessors, piled onto the free ones (three to
// an SM for MQA's) instead of spreading over all of them, and a grid of one wave or less then ran on fewer SMs. H200,
// MQA at batch 64 / ctx 2048, attention alone: 1.14-1.15 ms let in early at its planned 4 partitions, 1.00 not (1.62
// against 1.14 over 2); GQA-8's steps the same either way (results/h200-1204e-attention-placed-evenly.md).
__device__ __forceinline__ void wait_for_previous_kernel(bool let_next_in = true) {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (let_next_in) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum (MAX false) or maximum (MAX true; of values >= 0, the warps past the block counting 0) over the block; every
// thread gets the result. blockDim.x is a multiple of 32, at most 1024.
template <bool MAX>
__device__ float block_reduce(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float r = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
        r = MAX ? warp_max(r) : warp_sum(r);
        if (lane == 0) total = r;
    }
    __syncthreads();
    return total;
}

// d += a b on tensor cores (sm_80+): one m16n8k16 MMA of bfloat16 (BF16) or float16 fragments, float32 accumulators
// (PTX's .row.col fragment layouts). A template, so that modules compiled for older GPUs never emit it.
template <bool BF16>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const unsigned int (&a)[4], unsigned int b0, unsigned int b1) {
    if constexpr (BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
