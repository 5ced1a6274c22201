// A mixture's expert products for a step's rows grouped by expert (ExpertGroups), in one launch and without the host:
// expert e multiplies rows starts[e] .. starts[e + 1] of x (their count is read on the device, so a decode step of a
// mixture can be captured as a CUDA graph; the grouped cuBLAS products need the counts on the host first).
// For steps of a few rows an expert (a decode step's ~tokens x k / E): each expert's weight is read once for up to
// EXPERT_ROWS rows (more rows take another pass over it), as a weight-streaming product of a few rows should; many rows
// an expert (a long prompt's) are cuBLAS's (DecoderStep.GroupsExpertsOnTheDevice chooses).
//
// Block (16 output features of one expert, blockIdx.x; the expert, blockIdx.y): EXPERT_WARPS warps split K in chunks of
// 32 columns, warp w taking chunks w, w + EXPERT_WARPS, ...; per chunk lane (g, t) holds 8 consecutive elements (16
// bytes) of weight rows g and g + 8 and of the input rows g of each tile of 8 rows, and runs two m16n8k16 MMAs a tile
// (features the MMAs' m, rows their n). The MMAs see K in another order than the weight's, the same for both operands (a
// sum does not care): k index 2t + h + 8i of MMA j (h, i in {0, 1}) is element 8t + 4j + 2i + h of the chunk, so a
// 32-bit word of a lane's weight or input vector is one of the fragments' registers as it lies. A column past k (its 8
// elements wholly past: k a multiple of 8) reads as zeros. The warps' sums meet in shared memory and are written in the
// model's type, rounded once from float32 as cuBLAS rounds them.
//   x: (slots, k) contiguous, rows grouped by expert; or, with x_rows (slots int64, ExpertGroups.Tokens), the tokens'
//   rows (tokens, k), grouped row r being x's row x_rows[r] (the kernel gathers a step's routed rows itself, as vLLM's
//   fused MoE reads its sorted token ids; null: x is grouped); w: (experts x n, k) contiguous, expert e's rows at e x n;
//   starts: experts + 1 int64, nondecreasing, starts[experts] = slots; active: experts int64, the experts with rows
//   first (ExpertGroups.Active): block row y multiplies expert active[y]'s, so a grid of min(experts, slots) rows of
//   blocks covers every expert with rows (a decode step of one token launches its k experts' blocks, not all of them);
//   y: (slots, n) contiguous. n a multiple of 16, k of 8; grid (n / 16, min(experts, slots)) blocks of EXPERT_WARPS x 32 threads.
// The GLU epilogues write an activation of a gate and an up product in their place, y (slots, n / 2), from the two
// products rounded, as the activation's own kernel computes it from the product (the same bits): a block's 16 weight
// rows are 8 gates' and their 8 ups', so that it holds both sums of its 8 output features (the same grid: n / 16 =
// (n / 2) / 8 blocks of features).
//   _glu entry points: an expert's n rows are its gate's n / 2 rows then its up's (MoeMlp's gate_up); silu(gate) x up
//   as silu_mul computes it.
//   _clamped_glu: gpt-oss's, gate and up rows interleaved (the gate at the even rows), bias (experts, n) of the model's
//   type added first and the result clamped at limit as clamped_glu computes it.
// Compiled after element_types.cu (elem_t, mma_m16n8k16, wait_for_previous_kernel) and decoder_kernels.cu
// (silu_and_mul, clamped_glu_of); 16-bit models only.

#if ELEM_TYPE == 1 || ELEM_TYPE == 2

#define EXPERT_WARPS 4
// EXPERT_TILES (tiles of 8 rows a pass over the weight) comes from FusedKernels.Defines (ExpertRowsAPass / 8)
#define EXPERT_ROWS (8 * EXPERT_TILES)

// what an expert product writes (see the top)
enum expert_epilogue { PLAIN_PRODUCT = 0, SILU_GLU = 1, CLAMPED_GLU = 2 };

// 16 weight bytes, streamed past L1 (each is read by one block); not volatile, so that the compiler may issue the loads
// ahead of the MMAs before them
__device__ __forceinline__ uint4 expert_weight_load(const elem_t* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// 16 input bytes through the read-only cache (the other feature blocks of the expert read them too)
__device__ __forceinline__ uint4 expert_input_load(const elem_t* p) {
    uint4 v;
    asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// lane (g, t)'s 8 elements of weight rows g and g + 8 in a chunk; zeros past k or past the last chunk
__device__ __forceinline__ void load_expert_weight(uint4& a0, uint4& a8, const elem_t* w0, const elem_t* w8, int chunk, int k) {
    const int column = chunk * 32 + 8 * (threadIdx.x & 3);
    if (column < k) {
        a0 = expert_weight_load(w0 + chunk * 32);
        a8 = expert_weight_load(w8 + chunk * 32);
    } else {
        a0 = make_uint4(0u, 0u, 0u, 0u);
        a8 = a0;
    }
}

// Lane (g, t)'s input rows of a pass (the pass's rows tile x 8 + g, from column 8t; null past its rows), where they lie
// (x_rows: see the top).
template <int TILES>
__device__ __forceinline__ void expert_input_rows(const elem_t* (&x_tile)[TILES], const elem_t* x, const long long* __restrict__ x_rows,
                                                  long pass, int rows, int k) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int tile = 0; tile < TILES; tile++) {
        const long row = pass + tile * 8 + g;
        x_tile[tile] = tile * 8 + g < rows ? x + (x_rows != nullptr ? x_rows[row] : row) * (long)k + 8 * t : nullptr;
    }
}

// A block's share of an expert product: expert active[blockIdx.y]'s features blockIdx.x x 16 .. + 16, lane (g, t)'s
// weight rows g and g + 8 from column 8t (w0, w8), and the expert's rows of x, first .. end; with a GLU epilogue, output
// features blockIdx.x x 8 .. + 8 (first_feature: of y's rows), w0 the gate's row of feature g and w8 its up's, and
// (CLAMPED_GLU) bias the gate's and up's biases of the block's first feature. Waits for the kernel before (the groups
// and the input are its) before reading them.
struct expert_block { const elem_t* w0; const elem_t* w8; const elem_t* bias; long first_feature, first, end; };

template <int EPILOGUE>
__device__ __forceinline__ expert_block expert_block_of(const elem_t* __restrict__ w, const elem_t* __restrict__ bias,
                                                        const long long* __restrict__ starts, const long long* __restrict__ active,
                                                        int n, int k) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    wait_for_previous_kernel();
    const int expert = (int)active[blockIdx.y];
    expert_block block;
    block.first_feature = (long)blockIdx.x * (EPILOGUE == PLAIN_PRODUCT ? 16 : 8);
    // lane's w0 row, and how far on its w8 row lies: PLAIN_PRODUCT rows g and g + 8 of the block's 16; SILU_GLU feature
    // g's gate and its up n / 2 rows on; CLAMPED_GLU the gate at row 2 x feature and its up the next row
    const long row = EPILOGUE == CLAMPED_GLU ? 2 * (block.first_feature + g) : block.first_feature + g;
    const long up_row = EPILOGUE == PLAIN_PRODUCT ? 8 : EPILOGUE == SILU_GLU ? n / 2 : 1;
    block.w0 = w + ((long)expert * n + row) * k + 8 * t;
    block.w8 = block.w0 + up_row * k;
    block.bias = EPILOGUE == CLAMPED_GLU ? bias + (long)expert * n + 2 * block.first_feature : nullptr;
    block.first = starts[expert];
    block.end = starts[expert + 1];
    return block;
}

// A pass's sums written: each warp's acc[tile] ((weight row g, rows 2t and 2t + 1 of the tile), (weight row g + 8,
// the same rows)) into partial, then the warps' sums of a (weight row, row) rounded once into y's rows from pass,
// features from first_feature; with a GLU epilogue, weight rows g and g + 8 are feature g's gate and up, and y (rows
// n / 2) takes its activation of the two rounded (CLAMPED_GLU: bias the gate's and up's biases of first_feature on).
// Leaves partial free for the next pass.
template <int EPILOGUE, int TILES>
__device__ __forceinline__ void store_expert_rows(const float (&acc)[TILES][4], float (*partial)[16][EXPERT_ROWS], int rows,
                                                  elem_t* __restrict__ y, long pass, long first_feature, const elem_t* __restrict__ bias,
                                                  int n, float limit) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int features = EPILOGUE == PLAIN_PRODUCT ? 16 : 8, y_n = EPILOGUE == PLAIN_PRODUCT ? n : n / 2;   // y's row
    elem_t* y_pass = y + pass * y_n + first_feature;
#pragma unroll
    for (int tile = 0; tile < TILES; tile++) {
        partial[warp][g][tile * 8 + 2 * t] = acc[tile][0];
        partial[warp][g][tile * 8 + 2 * t + 1] = acc[tile][1];
        partial[warp][g + 8][tile * 8 + 2 * t] = acc[tile][2];
        partial[warp][g + 8][tile * 8 + 2 * t + 1] = acc[tile][3];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < features * 8 * TILES; i += EXPERT_WARPS * 32) {
        const int feature = i % features, row = i / features;
        if (row >= rows) continue;
        float sum = 0.f, up = 0.f;                          // up: a GLU's up product
#pragma unroll
        for (int v = 0; v < EXPERT_WARPS; v++) {
            sum += partial[v][feature][row];
            if (EPILOGUE != PLAIN_PRODUCT) up += partial[v][feature + 8][row];
        }
        elem_t* out = y_pass + (long)row * y_n + feature;
        if (EPILOGUE == PLAIN_PRODUCT) *out = from_f(sum);
        else if (EPILOGUE == SILU_GLU) *out = silu_and_mul(from_f(sum), from_f(up));
        else *out = clamped_glu_of(from_f(sum), from_f(up), bias[2 * feature], bias[2 * feature + 1], limit);
    }
    __syncthreads();                                        // partial is the next pass's
}

// The entry points' arguments (see the top; bias and limit are CLAMPED_GLU's)
#define EXPERT_LINEAR_ARGS                                                                                               \
        const elem_t* __restrict__ x, const long long* __restrict__ x_rows, const elem_t* __restrict__ w,                \
        const long long* __restrict__ starts, const long long* __restrict__ active, elem_t* __restrict__ y, int n, int k, \
        const elem_t* __restrict__ bias, float limit

// expert_linear's body: EXPERT_TILES tiles a pass, a chunk's weight loaded a chunk ahead
template <int EPILOGUE>
__device__ __forceinline__ void expert_linear_rows(EXPERT_LINEAR_ARGS) {
    const int warp = threadIdx.x >> 5, t = threadIdx.x & 3;
    const expert_block block = expert_block_of<EPILOGUE>(w, bias, starts, active, n, k);
    const elem_t *w0 = block.w0, *w8 = block.w8;
    if (block.first >= block.end) return;                  // no row chose this expert
    const int chunks = (k + 31) / 32;

    __shared__ float partial[EXPERT_WARPS][16][EXPERT_ROWS];
    for (long pass = block.first; pass < block.end; pass += EXPERT_ROWS) {
        const int rows = (int)min((long)EXPERT_ROWS, block.end - pass);
        const elem_t* x_tile[EXPERT_TILES];
        expert_input_rows<EXPERT_TILES>(x_tile, x, x_rows, pass, rows, k);
        float acc[EXPERT_TILES][4] = {};
        // a chunk's weight vectors are loaded a chunk ahead of its MMAs
        uint4 next0 = {}, next8 = {};
        load_expert_weight(next0, next8, w0, w8, warp, k);
#pragma unroll 2
        for (int chunk = warp; chunk < chunks; chunk += EXPERT_WARPS) {
            const int column = chunk * 32 + 8 * t;
            const uint4 a0 = next0, a8 = next8;
            load_expert_weight(next0, next8, w0, w8, chunk + EXPERT_WARPS, k);
            uint4 b[EXPERT_TILES];
#pragma unroll
            for (int tile = 0; tile < EXPERT_TILES; tile++)
                b[tile] = x_tile[tile] != nullptr && column < k ? expert_input_load(x_tile[tile] + chunk * 32) : make_uint4(0u, 0u, 0u, 0u);
            const unsigned int first_half[4] = {a0.x, a8.x, a0.y, a8.y}, second_half[4] = {a0.z, a8.z, a0.w, a8.w};
#pragma unroll
            for (int tile = 0; tile < EXPERT_TILES; tile++) {
                if (tile * 8 >= rows) break;                // the same for the whole warp: every lane runs the MMAs
                mma_m16n8k16<ELEM_TYPE == 1>(acc[tile], first_half, b[tile].x, b[tile].y);
                mma_m16n8k16<ELEM_TYPE == 1>(acc[tile], second_half, b[tile].z, b[tile].w);
            }
        }
        store_expert_rows<EPILOGUE, EXPERT_TILES>(acc, partial, rows, y, pass, block.first_feature, block.bias, n, limit);
    }
}

// expert_linear for steps of few rows an expert (ExpertsLinear chooses): a pass takes TILES tiles of 8 rows, and each
// warp loads LOADS_AHEAD chunks' operands (the weight's from memory, the input's from L2) before their MMAs: more loads
// in flight than a chunk ahead, in fewer registers. expert_linear_sparse (one tile) serves a step of fewer slots than
// experts (an expert's rows mostly one), expert_linear_few (two) one of at most 8 slots an expert on average.
#define LOADS_AHEAD 4
template <int EPILOGUE, int TILES>
__device__ __forceinline__ void expert_linear_loads_ahead(float (*partial)[16][EXPERT_ROWS], EXPERT_LINEAR_ARGS) {
    const int warp = threadIdx.x >> 5, t = threadIdx.x & 3;
    const expert_block block = expert_block_of<EPILOGUE>(w, bias, starts, active, n, k);
    const elem_t *w0 = block.w0, *w8 = block.w8;
    const int chunks = (k + 31) / 32;

    for (long pass = block.first; pass < block.end; pass += 8 * TILES) {
        const int rows = (int)min(8L * TILES, block.end - pass);
        const elem_t* x_tile[TILES];
        expert_input_rows<TILES>(x_tile, x, x_rows, pass, rows, k);
        float acc[TILES][4] = {};
        for (int c0 = warp; c0 < chunks; c0 += LOADS_AHEAD * EXPERT_WARPS) {
            uint4 a0[LOADS_AHEAD], a8[LOADS_AHEAD], b[LOADS_AHEAD][TILES];
#pragma unroll
            for (int i = 0; i < LOADS_AHEAD; i++) {
                const int chunk = c0 + i * EXPERT_WARPS, column = chunk * 32 + 8 * t;
                load_expert_weight(a0[i], a8[i], w0, w8, chunk, k);   // zeros past the last chunk
#pragma unroll
                for (int tile = 0; tile < TILES; tile++)
                    b[i][tile] = x_tile[tile] != nullptr && column < k ? expert_input_load(x_tile[tile] + chunk * 32) : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int i = 0; i < LOADS_AHEAD; i++) {
                const unsigned int first_half[4] = {a0[i].x, a8[i].x, a0[i].y, a8[i].y}, second_half[4] = {a0[i].z, a8[i].z, a0[i].w, a8[i].w};
#pragma unroll
                for (int tile = 0; tile < TILES; tile++) {
                    if (tile * 8 >= rows) break;            // the same for the whole warp
                    mma_m16n8k16<ELEM_TYPE == 1>(acc[tile], first_half, b[i][tile].x, b[i][tile].y);   // zeros past k add nothing
                    mma_m16n8k16<ELEM_TYPE == 1>(acc[tile], second_half, b[i][tile].z, b[i][tile].w);
                }
            }
        }
        store_expert_rows<EPILOGUE, TILES>(acc, partial, rows, y, pass, block.first_feature, block.bias, n, limit);
    }
}

// The entry points, each compiled for each epilogue (expert_linear, _sparse, _few; the same with _glu, with
// _clamped_glu): the epilogue a constant there, so that the plain products keep the code (and registers) they had
// without the others.
#define EXPERT_LINEAR_CALL_ARGS x, x_rows, w, starts, active, y, n, k, bias, limit
#define EXPERT_LINEAR_ENTRY_POINTS(SUFFIX, EPILOGUE)                                                                     \
    extern "C" __global__ void __launch_bounds__(EXPERT_WARPS * 32) expert_linear##SUFFIX(EXPERT_LINEAR_ARGS) {         \
        expert_linear_rows<EPILOGUE>(EXPERT_LINEAR_CALL_ARGS);                                                           \
    }                                                                                                                    \
    extern "C" __global__ void __launch_bounds__(EXPERT_WARPS * 32) expert_linear_sparse##SUFFIX(EXPERT_LINEAR_ARGS) {  \
        __shared__ float partial[EXPERT_WARPS][16][EXPERT_ROWS];                                                         \
        expert_linear_loads_ahead<EPILOGUE, 1>(partial, EXPERT_LINEAR_CALL_ARGS);                                        \
    }                                                                                                                    \
    extern "C" __global__ void __launch_bounds__(EXPERT_WARPS * 32) expert_linear_few##SUFFIX(EXPERT_LINEAR_ARGS) {     \
        __shared__ float partial[EXPERT_WARPS][16][EXPERT_ROWS];                                                         \
        expert_linear_loads_ahead<EPILOGUE, 2>(partial, EXPERT_LINEAR_CALL_ARGS);                                        \
    }
EXPERT_LINEAR_ENTRY_POINTS(, PLAIN_PRODUCT)
EXPERT_LINEAR_ENTRY_POINTS(_glu, SILU_GLU)
EXPERT_LINEAR_ENTRY_POINTS(_clamped_glu, CLAMPED_GLU)

#endif
