// FP8 (E4M3) quantization of a matrix for the FP8 products (Fp8Products.cs), compiled after element_types.cu with
// ELEM_TYPE (the model's 16-bit type) and CACHE_TYPE=3 (the e4m3 conversions, sm_89+). Each element becomes x / scale
// rounded to the nearest e4m3 (saturating, so a value rounding past 448 stays 448); a scale the kernels find is the
// largest magnitude it covers over 448 (e4m3's largest finite value).
// Per tensor (vLLM's dynamic per-tensor scheme: online weights once as they load, a product's input at every step). A
// large matrix takes two kernels, so that the scale is known before any element is converted and nothing needs
// zeroing between steps (a CUDA graph replays them):
//   fp8_absmax:   each block writes the largest |x| of its share of the rows to partials[blockIdx.x];
//   fp8_quantize: every block takes the maximum of the partials, block 0 writes the scale, and converts its share.
// A small one (at most 2 16-byte vectors a thread: a tiny model's rows, or a few rows where fp8_few_rows.cu does not
// take them) takes one block of fp8_quantize_small, which does both: one launch less where launches, not bytes, are
// the cost.
// Per row, one block a row:
//   fp8_quantize_rows:          a product's input with a scale per token (its row's largest magnitude), for weights
//                               with a scale per output channel (cuBLASLt's outer-vector scaling);
//   fp8_quantize_row_groups:    a product's input with a scale per token and SCALE_BLOCK columns, for weights with a
//                               scale per SCALE_BLOCK x SCALE_BLOCK block (cuBLASLt's VEC128 scaling; the scales laid
//                               out a column group after another: group g of row r at g x rows + r);
//   fp8_quantize_scaled_rows:   a weight by the scales its FP8 checkpoint stored it with (one a row), which gives back
//                               the checkpoint's values from the 16-bit ones they were dequantized to;
//   fp8_quantize_scaled_blocks: the same with one scale per SCALE_BLOCK x SCALE_BLOCK block (block (i, j) at
//                               i x scale_ld + j).
// x: rows of cols elements (cols a multiple of VEC), ld elements apart, 16-byte aligned; out: rows x cols contiguous.

#define FP8_MAX 448.f
// SCALE_BLOCK (Fp8Products.Defines, 128): rows and columns of a block scale; columns of an input's scale group
#define FP8_MIN_SCALE (1.f / (448.f * 512.f))   // an all-zero matrix still divides by something

// the vectors a thread takes: its share of the grid's (the whole matrix), or of its block's (one row, or a matrix one
// block converts)
#define GRID_FIRST (blockIdx.x * (long)blockDim.x + threadIdx.x)
#define GRID_STEP ((long)gridDim.x * blockDim.x)

// the largest |x| of the vectors first, first + step, ... (every thread of the block gets the block's)
__device__ float block_absmax(const elem_t* __restrict__ x, long rows, int cols, long ld, long first, long step) {
    const int row_vectors = cols / VEC;
    const long total_vectors = rows * row_vectors;
    float largest = 0.f;
    for (long c = first; c < total_vectors; c += step) {
        const long row = c / row_vectors;
        const vec_t v = reinterpret_cast<const vec_t*>(x + row * ld)[c % row_vectors];
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) largest = fmaxf(largest, fabsf(to_float(v.v[j])));
    }
    return block_reduce<true>(largest);
}

extern "C" __global__ void fp8_absmax(const elem_t* __restrict__ x, long rows, int cols, long ld, float* __restrict__ partials) {
    wait_for_previous_kernel();
    const float largest = block_absmax(x, rows, cols, ld, GRID_FIRST, GRID_STEP);
    if (threadIdx.x == 0) partials[blockIdx.x] = largest;
}

struct __align__(8) fp8x8_t { unsigned int lo, hi; };   // eight e4m3, the first in the lowest byte

// two floats to two e4m3 in 16 bits: lo in the low byte
__device__ __forceinline__ unsigned short to_e4m3x2(float lo, float hi) {
    unsigned short pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(hi), "f"(lo));
    return pair;
}

// one vector as VEC e4m3 of v * inverse, contiguous at o
__device__ __forceinline__ void quantize_vector(const vec_t v, float inverse, unsigned char* __restrict__ o) {
    unsigned short pairs[VEC / 2];
#pragma unroll
    for (int j = 0; j < (int)VEC / 2; j++) pairs[j] = to_e4m3x2(to_float(v.v[2 * j]) * inverse, to_float(v.v[2 * j + 1]) * inverse);
#if ELEM_TYPE == 0
    reinterpret_cast<unsigned int*>(o)[0] = pairs[0] | ((unsigned int)pairs[1] << 16);
#else
    reinterpret_cast<fp8x8_t*>(o)[0] = fp8x8_t{pairs[0] | ((unsigned int)pairs[1] << 16), pairs[2] | ((unsigned int)pairs[3] << 16)};
#endif
}

// the vectors first, first + step, ... as e4m3 of x * inverse
__device__ void quantize_share(const elem_t* __restrict__ x, long rows, int cols, long ld, float inverse, unsigned char* __restrict__ out,
                               long first, long step) {
    const int row_vectors = cols / VEC;
    const long total_vectors = rows * row_vectors;
    for (long c = first; c < total_vectors; c += step) {
        const long row = c / row_vectors;
        quantize_vector(reinterpret_cast<const vec_t*>(x + row * ld)[c % row_vectors], inverse, out + c * VEC);
    }
}

// the scale of a largest magnitude, written to *scale unless scale is null; returns its inverse
__device__ __forceinline__ float scale_of(float largest, float* __restrict__ scale) {
    const float s = fmaxf(largest / FP8_MAX, FP8_MIN_SCALE);
    if (scale != nullptr) *scale = s;
    return 1.f / s;
}

extern "C" __global__ void fp8_quantize(const elem_t* __restrict__ x, long rows, int cols, long ld,
                                        const float* __restrict__ partials, int num_partials,
                                        float* __restrict__ scale, unsigned char* __restrict__ out) {
    wait_for_previous_kernel();
    __shared__ float inverse;
    if (threadIdx.x < 32) {
        float largest = 0.f;
        for (int i = threadIdx.x; i < num_partials; i += 32) largest = fmaxf(largest, partials[i]);
        largest = warp_max(largest);
        if (threadIdx.x == 0) inverse = scale_of(largest, blockIdx.x == 0 ? scale : nullptr);
    }
    __syncthreads();
    quantize_share(x, rows, cols, ld, inverse, out, GRID_FIRST, GRID_STEP);
}

// one block: the largest magnitude, then the conversion (its second read of x hits the cache)
extern "C" __global__ void fp8_quantize_small(const elem_t* __restrict__ x, long rows, int cols, long ld,
                                              float* __restrict__ scale, unsigned char* __restrict__ out) {
    wait_for_previous_kernel();
    const float largest = block_absmax(x, rows, cols, ld, threadIdx.x, blockDim.x);
    __shared__ float inverse;
    if (threadIdx.x == 0) inverse = scale_of(largest, scale);
    __syncthreads();
    quantize_share(x, rows, cols, ld, inverse, out, threadIdx.x, blockDim.x);
}

// one block a row: scales (rows) float32 written, out rows x cols
extern "C" __global__ void fp8_quantize_rows(const elem_t* __restrict__ x, int cols, long ld,
                                             float* __restrict__ scales, unsigned char* __restrict__ out) {
    wait_for_previous_kernel();
    const elem_t* x_row = x + blockIdx.x * ld;
    const float largest = block_absmax(x_row, 1, cols, cols, threadIdx.x, blockDim.x);
    __shared__ float inverse;
    if (threadIdx.x == 0) inverse = scale_of(largest, scales + blockIdx.x);
    __syncthreads();
    quantize_share(x_row, 1, cols, cols, inverse, out + blockIdx.x * (long)cols, threadIdx.x, blockDim.x);
}

// one block a row: scales (rows) float32 given, out rows x cols
extern "C" __global__ void fp8_quantize_scaled_rows(const elem_t* __restrict__ x, int cols, long ld,
                                                    const float* __restrict__ scales, unsigned char* __restrict__ out) {
    wait_for_previous_kernel();
    quantize_share(x + blockIdx.x * ld, 1, cols, cols, 1.f / scales[blockIdx.x], out + blockIdx.x * (long)cols, threadIdx.x, blockDim.x);
}

// one block a row of out (blockDim a multiple of 32): x has x_rows of them, out rows (rows past x's are zeros, scale
// the smallest); scales (cols / SCALE_BLOCK x rows) float32 written, a group's at group x rows + row; out rows x cols.
// The SCALE_BLOCK / VEC lanes of a group (a half or whole warp's) find its largest magnitude together; every lane of a
// warp takes part in the shuffles, those past the row's vectors with zeros.
extern "C" __global__ void fp8_quantize_row_groups(const elem_t* __restrict__ x, int x_rows, int rows, int cols, long ld,
                                                   float* __restrict__ scales, unsigned char* __restrict__ out) {
    wait_for_previous_kernel();
    constexpr int group_vectors = SCALE_BLOCK / VEC;
    const bool in_x = (int)blockIdx.x < x_rows;
    const elem_t* x_row = x + (in_x ? blockIdx.x : 0) * ld;
    const int row_vectors = cols / VEC;
    for (int first = 0; first < row_vectors; first += blockDim.x) {
        const int c = first + threadIdx.x;
        const bool active = c < row_vectors;
        vec_t v = {};
        if (active && in_x) v = reinterpret_cast<const vec_t*>(x_row)[c];
        float largest = 0.f;
#pragma unroll
        for (int j = 0; j < (int)VEC; j++) largest = fmaxf(largest, fabsf(to_float(v.v[j])));
#pragma unroll
        for (int offset = group_vectors / 2; offset > 0; offset /= 2) largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
        if (!active) continue;
        const int group = c / group_vectors;
        const float inverse = scale_of(largest, c % group_vectors == 0 ? scales + (long)group * rows + blockIdx.x : nullptr);
        quantize_vector(v, inverse, out + blockIdx.x * (long)cols + (long)c * VEC);
    }
}

// one block a row: scales (rows / SCALE_BLOCK x scale_ld) float32 given, block (i, j) at i x scale_ld + j; out rows x cols
extern "C" __global__ void fp8_quantize_scaled_blocks(const elem_t* __restrict__ x, int cols, long ld,
                                                      const float* __restrict__ scales, int scale_ld, unsigned char* __restrict__ out) {
    wait_for_previous_kernel();
    const elem_t* x_row = x + blockIdx.x * ld;
    const float* row_scales = scales + (blockIdx.x / SCALE_BLOCK) * (long)scale_ld;
    for (int c = threadIdx.x; c < cols / (int)VEC; c += blockDim.x)
        quantize_vector(reinterpret_cast<const vec_t*>(x_row)[c], 1.f / row_scales[c * (int)VEC / SCALE_BLOCK], out + blockIdx.x * (long)cols + (long)c * VEC);
}
