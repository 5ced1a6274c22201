// The product y = x W^T of a few rows (a decode step of at most FEW_ROWS sequences) with an FP8 weight, for the FP8
// products (Fp8Products.cs), compiled after element_types.cu with ELEM_TYPE (the model's 16-bit type) and CACHE_TYPE=3.
// cuBLASLt's FP8 kernels are tiles built for many rows: at one row they read a weight at 1.6-2.6 TB/s of an H100's
// 3.0, and each needs the input quantized by a kernel of its own first. Here the input stays in 16 bits (the weight's
// e4m3 values are exact in either 16-bit type), so a few rows take one launch and a product as precise as the
// weight's quantization allows (W8A16; many rows are W8A8, their input quantized per tensor).
//
// Block: 16 output features (the m of m16n8k16 MMAs) x up to 8 input rows (their n), FEW_WARPS warps splitting K in
// chunks of FEW_CHUNK: warp w takes chunks w, w + FEW_WARPS, ...; each lane reads 32 consecutive weight bytes of rows
// g and g + 8 per chunk (whole 128-byte lines per row) and 32 consecutive input elements of row g. The MMAs see K in
// another order than the weight's, the same for both operands (a sum does not care): k index 2t + h + 8i of MMA j
// (h, i in {0, 1}) is element 32 t + 4 j + 2 i + h of the chunk, so a 32-bit word of the weight's bytes is the a0 / a2
// (row g) or a1 / a3 (row g + 8) pair of one MMA, and a 32-bit word of the input is a b0 or b1 as it lies.
// The weight does not depend on the kernel before (dependent launch, element_types.cu): the first chunks' loads are
// issued before waiting for it. The warps' sums meet in shared memory; y = sum x the weight's scale (one for the whole
// weight, scale_stride 0, or one per output feature, scale_stride 1), in the model's type. A weight with a scale per
// 128 x 128 block (an FP8 checkpoint's; the _blocks builds, FEW_CHUNK 128) scales each chunk's MMAs by its block's
// (a block's 16 features share it) as they add up; scale_stride is then the scales' row length (block (i, j) at
// i x scale_stride + j).
// Two builds: fp8_linear_few_rows keeps two chunks a warp in flight (two blocks an SM), fp8_linear_few_rows_lean one
// (its registers let four blocks share an SM; three for block scales), for grids the first would end with a part-empty
// wave (Fp8Products picks by the grid; H100, llama3-8b's qkv_proj, 384 blocks: 13.7 -> 11.5 us at one row).
//   x: rows x k (k a multiple of FEW_CHUNK), ld elements apart, 16-byte aligned; w: n x k e4m3 bytes (n a multiple of
//   16, of 128 for block scales); w_scale: float32, 1, n or n / 128 x scale_stride of them; y: rows x n contiguous.
//   Grid: n / 16 blocks of FEW_WARPS x 32 threads.
// FEW_ROWS (8, the MMAs' n), FEW_WARPS, FEW_CHUNK and SCALE_BLOCK come from Fp8Products.Defines, which launches the
// kernels.

#if ELEM_TYPE == 1 || ELEM_TYPE == 2

static_assert(FEW_CHUNK == SCALE_BLOCK, "a chunk is one block's columns: the _blocks builds scale a chunk's MMAs by one block's scale");

// The MMAs: element_types.cu's mma_m16n8k16 in the model's type.

// two e4m3 (the low byte first) as two elements of the MMA's type, exactly
__device__ __forceinline__ unsigned int e4m3x2_to_elements(unsigned int pair) {
    unsigned int h2;
    asm("{\n .reg .b16 p;\n cvt.u16.u32 p, %1;\n cvt.rn.f16x2.e4m3x2 %0, p;\n}" : "=r"(h2) : "r"(pair));
#if ELEM_TYPE == 1
    float lo, hi;
    asm("{\n .reg .b16 l, h;\n mov.b32 {l, h}, %2;\n cvt.f32.f16 %0, l;\n cvt.f32.f16 %1, h;\n}" : "=f"(lo), "=f"(hi) : "r"(h2));
    unsigned int r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#else
    return h2;
#endif
}

// 16 weight bytes, streamed past L1 (read once; the input rows stay there for the block's other warps)
__device__ __forceinline__ uint4 load_weight_bytes(const unsigned char* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// 16 input bytes through the read-only cache (the block's other warps read them too)
__device__ __forceinline__ uint4 load_input_bytes(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// a lane's share of one chunk's weight: 32 bytes of row g (words 0-7) and of row g + 8 (words 8-15)
struct FewRowsWeight { uint4 v[4]; };

__device__ __forceinline__ void load_chunk_weight(FewRowsWeight& w, const unsigned char* w0, const unsigned char* w8, int chunk, int chunks) {
    if (chunk < chunks) {
        const long at = (long)chunk * FEW_CHUNK;
        w.v[0] = load_weight_bytes(w0 + at);
        w.v[1] = load_weight_bytes(w0 + at + 16);
        w.v[2] = load_weight_bytes(w8 + at);
        w.v[3] = load_weight_bytes(w8 + at + 16);
    }
}

__device__ __forceinline__ unsigned int word_of(const uint4 (&v)[4], int i) {
    const uint4 q = v[i >> 2];
    return (i & 3) == 0 ? q.x : (i & 3) == 1 ? q.y : (i & 3) == 2 ? q.z : q.w;
}

// the chunk's eight MMAs: weight words j (row g) and 8 + j (row g + 8), input words 2j and 2j + 1
__device__ __forceinline__ void multiply_chunk(float (&acc)[4], const FewRowsWeight& w, const uint4 (&x)[4]) {
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const unsigned int row_g = word_of(w.v, j), row_g8 = word_of(w.v, 8 + j);
        const unsigned int a[4] = {e4m3x2_to_elements(row_g & 0xffffu), e4m3x2_to_elements(row_g8 & 0xffffu),
                                   e4m3x2_to_elements(row_g >> 16), e4m3x2_to_elements(row_g8 >> 16)};
        mma_m16n8k16<ELEM_TYPE == 1>(acc, a, word_of(x, 2 * j), word_of(x, 2 * j + 1));
    }
}

// UNROLL: chunks of one warp in flight at a time; BLOCKS: a scale per 128 x 128 block (else per tensor or feature);
// x_rows: where each input row lies (row r at x_rows[r] x ld; the FP8 experts' gathered rows), or null (at r x ld)
template <int UNROLL, bool BLOCKS>
__device__ __forceinline__ void linear_few_rows(const elem_t* __restrict__ x, const long long* __restrict__ x_rows, int rows, int k, long ld,
                                                const unsigned char* __restrict__ w, const float* __restrict__ w_scale, int scale_stride,
                                                elem_t* __restrict__ y, int n) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const long first_feature = (long)blockIdx.x * 16;
    const unsigned char* w0 = w + (first_feature + g) * k + t * 32;
    const unsigned char* w8 = w0 + 8L * k;
    const bool has_row = g < rows;
    const elem_t* x_row = x + (has_row && x_rows != nullptr ? x_rows[g] : g) * ld + t * 32;
    const int chunks = k / FEW_CHUNK, step = FEW_WARPS * UNROLL;

    FewRowsWeight current[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) load_chunk_weight(current[u], w0, w8, warp + u * FEW_WARPS, chunks);
    wait_for_previous_kernel();                             // the input is the kernel before's output

    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int first = warp; first < chunks; first += step) {
        FewRowsWeight next[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) load_chunk_weight(next[u], w0, w8, first + step + u * FEW_WARPS, chunks);
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int chunk = first + u * FEW_WARPS;
            if (chunk >= chunks) break;
            uint4 xv[4] = {};                               // rows past the input's: zeros
            if (has_row) {
                const uint4* p = reinterpret_cast<const uint4*>(x_row + (long)chunk * FEW_CHUNK);
#pragma unroll
                for (int i = 0; i < 4; i++) xv[i] = load_input_bytes(p + i);
            }
            if (BLOCKS) {
                float chunk_acc[4] = {0.f, 0.f, 0.f, 0.f};
                multiply_chunk(chunk_acc, current[u], xv);
                const float block_scale = w_scale[(first_feature / SCALE_BLOCK) * scale_stride + chunk];
#pragma unroll
                for (int i = 0; i < 4; i++) acc[i] = fmaf(chunk_acc[i], block_scale, acc[i]);
            } else {
                multiply_chunk(acc, current[u], xv);
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) current[u] = next[u];
    }

    // acc: (feature g, rows 2t, 2t + 1), (feature g + 8, rows 2t, 2t + 1); the warps' sums meet here
    __shared__ float partial[FEW_WARPS][16][FEW_ROWS];
    partial[warp][g][2 * t] = acc[0];
    partial[warp][g][2 * t + 1] = acc[1];
    partial[warp][g + 8][2 * t] = acc[2];
    partial[warp][g + 8][2 * t + 1] = acc[3];
    __syncthreads();
    const int feature = threadIdx.x / FEW_ROWS, row = threadIdx.x % FEW_ROWS;
    if (feature < 16 && row < rows) {
        float sum = 0.f;
#pragma unroll
        for (int v = 0; v < FEW_WARPS; v++) sum += partial[v][feature][row];
        y[(long)row * n + first_feature + feature] = from_f(BLOCKS ? sum : sum * w_scale[(first_feature + feature) * scale_stride]);
    }
}

extern "C" __global__ void __launch_bounds__(FEW_WARPS * 32) fp8_linear_few_rows(
        const elem_t* __restrict__ x, int rows, int k, long ld, const unsigned char* __restrict__ w,
        const float* __restrict__ w_scale, int scale_stride, elem_t* __restrict__ y, int n) {
    linear_few_rows<2, false>(x, nullptr, rows, k, ld, w, w_scale, scale_stride, y, n);
}

extern "C" __global__ void __launch_bounds__(FEW_WARPS * 32, 4) fp8_linear_few_rows_lean(
        const elem_t* __restrict__ x, int rows, int k, long ld, const unsigned char* __restrict__ w,
        const float* __restrict__ w_scale, int scale_stride, elem_t* __restrict__ y, int n) {
    linear_few_rows<1, false>(x, nullptr, rows, k, ld, w, w_scale, scale_stride, y, n);
}

extern "C" __global__ void __launch_bounds__(FEW_WARPS * 32) fp8_linear_few_rows_blocks(
        const elem_t* __restrict__ x, int rows, int k, long ld, const unsigned char* __restrict__ w,
        const float* __restrict__ w_scale, int scale_stride, elem_t* __restrict__ y, int n) {
    linear_few_rows<2, true>(x, nullptr, rows, k, ld, w, w_scale, scale_stride, y, n);
}

// three blocks an SM, not four: a block's scale per chunk takes the registers that would otherwise spill
extern "C" __global__ void __launch_bounds__(FEW_WARPS * 32, 3) fp8_linear_few_rows_lean_blocks(
        const elem_t* __restrict__ x, int rows, int k, long ld, const unsigned char* __restrict__ w,
        const float* __restrict__ w_scale, int scale_stride, elem_t* __restrict__ y, int n) {
    linear_few_rows<1, true>(x, nullptr, rows, k, ld, w, w_scale, scale_stride, y, n);
}

// A mixture's FP8 experts (ExpertWeights stores them stacked: expert e's values at e x n rows, its scales at e x
// expert_scale_stride floats) over a step's rows grouped by expert (ExpertGroups; expert_linear.cu does the same for
// 16-bit experts): block (blockIdx.x's 16 features, expert active[blockIdx.y]) reads where the expert's rows start on the
// device and runs the product above on them, FEW_ROWS rows a pass over the expert's weight; an expert no row chose returns.
//   x: (slots, k) contiguous, or with x_rows (slots int64) the tokens' rows, grouped row r at x's row x_rows[r] (as
//   expert_linear.cu gathers them); starts: experts + 1 int64; active: experts int64, the experts with rows first
//   (ExpertGroups.Active); y: (slots, n) contiguous. Grid (n / 16, min(experts, slots)).
template <int UNROLL, bool BLOCKS>
__device__ __forceinline__ void experts_few_rows(const elem_t* __restrict__ x, const long long* __restrict__ x_rows, int k, const unsigned char* __restrict__ w,
                                                 const float* __restrict__ w_scale, int scale_stride, long expert_scale_stride,
                                                 const long long* __restrict__ starts, const long long* __restrict__ active,
                                                 elem_t* __restrict__ y, int n) {
    wait_for_previous_kernel();                             // the groups and the input are the kernels before's
    const int expert = (int)active[blockIdx.y];
    const long first = starts[expert], end = starts[expert + 1];
    for (long pass = first; pass < end; pass += FEW_ROWS) {
        linear_few_rows<UNROLL, BLOCKS>(x_rows != nullptr ? x : x + pass * k, x_rows != nullptr ? x_rows + pass : nullptr,
                                        (int)min((long)FEW_ROWS, end - pass), k, k, w + (long)expert * n * k,
                                        w_scale + expert * expert_scale_stride, scale_stride, y + pass * n, n);
        __syncthreads();                                    // its shared sums are the next pass's
    }
}

extern "C" __global__ void __launch_bounds__(FEW_WARPS * 32) fp8_experts_few_rows(
        const elem_t* __restrict__ x, const long long* __restrict__ x_rows, int k, const unsigned char* __restrict__ w, const float* __restrict__ w_scale, int scale_stride,
        long expert_scale_stride, const long long* __restrict__ starts, const long long* __restrict__ active, elem_t* __restrict__ y, int n) {
    experts_few_rows<2, false>(x, x_rows, k, w, w_scale, scale_stride, expert_scale_stride, starts, active, y, n);
}

extern "C" __global__ void __launch_bounds__(FEW_WARPS * 32) fp8_experts_few_rows_blocks(
        const elem_t* __restrict__ x, const long long* __restrict__ x_rows, int k, const unsigned char* __restrict__ w, const float* __restrict__ w_scale, int scale_stride,
        long expert_scale_stride, const long long* __restrict__ starts, const long long* __restrict__ active, elem_t* __restrict__ y, int n) {
    experts_few_rows<2, true>(x, x_rows, k, w, w_scale, scale_stride, expert_scale_stride, starts, active, y, n);
}

#endif
