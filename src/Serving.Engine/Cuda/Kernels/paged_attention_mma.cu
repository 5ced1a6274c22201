// Paged attention on tensor cores (sm_80+), decode and prefill: the query heads of one KV head are the rows of
// 16 x 8 x 16 MMA tiles (mma.sync) against the K/V rows of that head, so a KV head is read from HBM once whatever the
// group size, and scored at tensor-core rate (FlashInfer's and TensorRT-LLM XQA's idea). Appended after
// paged_attention.cu: it shares its defines, and the decode kernel writes the same partial outputs, merged by
// paged_attention_reduce. Compiled only for 16-bit models over a 16-bit pool with HEAD_DIM a multiple of 16, or over
// an FP8 pool with HEAD_DIM a multiple of 32 (FusedKernels decides). Both kernels share attend_chunk, the per-warp step below; the prefill kernel's layout is
// described above it, at the end of the file.
//
// Decode:
//   block = (KV head, BLOCK_TILES 16-row tiles of its query heads, sequence, partition), MMA_WARPS warps: one per
//   (tile, chunk stream). Stream s takes the 16-token chunks s, s + STREAMS, ... of the partition through its own
//   MMA_STAGES-deep cp.async pipeline in its own shared memory; the stream's BLOCK_TILES warps load each chunk together
//   and score it against their own tile, so a group of up to 64 query heads reads its KV head once (MQA's 32 heads
//   are two tiles of one block). Each warp keeps its own running max / sum / output; at the end the streams' results
//   of a tile are merged through shared memory (as paged_attention_reduce merges partitions).
//   Groups of up to 8 query heads (TOKEN_ROWS) swap the roles: the chunk's tokens are the MMA rows and the heads
//   its columns (WarpColumns, below attend_chunk), so no MMA row is padding; the block and its streams are the same.
//
// Per 16-token chunk, per warp:
//   S (16 heads x 16 tokens)  = Q (16 x HEAD_DIM) . K^T      HEAD_DIM/16 x 2 MMAs, Q in registers for the whole run
//   P = exp2(S - m), rounded to the MMA type                  the accumulator layout of S is the A layout of P
//   O (16 x HEAD_DIM)        += P (16 x 16) . V              HEAD_DIM/8 MMAs, O in registers (float)
// K fragments come from shared memory through ldmatrix, V fragments through ldmatrix.trans. Rows are padded by 16
// bytes so the eight rows one ldmatrix phase reads fall in different banks.
//
// The MMA runs in the pool's 16-bit type, or float16 for an FP8 pool. FP8 fragments are not loaded with ldmatrix
// (it moves 16-bit elements): each lane reads its bytes of the staged chunk with plain shared loads and converts them
// in registers (exact: every e4m3 value is a float16). For that the MMAs see the head dimensions in another order
// than the pool's; a sum over dimensions does not care, and the output's order is restored where it is written:
//   Q . K^T: k index 2t + h + 8i of MMA kk (h, i in {0, 1})  <-  dimension t HEAD_DIM/4 + 4 kk + 2i + h, so lane t
//            reads HEAD_DIM/4 consecutive bytes of a K row and each 32-bit word is the b0 / b1 pair of one kk;
//   P . V:   output column c of n-tile n  <-  dimension c HEAD_DIM/8 + n, so lane g reads HEAD_DIM/8 consecutive
//            bytes of each of its four V rows (tokens 2t, 2t + 1, 2t + 8, 2t + 9) and pairs them up with prmt.
// Queries are converted to the MMA type when they differ (bfloat16 queries into float16 hold any |q| < 65504).
// Stored K and V are value / scale: K's scale multiplies the scores, V's the output.

#if ELEM_TYPE != 0 && (CACHE_TYPE == 1 || CACHE_TYPE == 2 || (CACHE_TYPE == 3 && HEAD_DIM % 32 == 0)) && HEAD_DIM % 16 == 0

#define MMA_WARPS 4
#define MMA_STAGES 3
#define MMA_CHUNK 16                                        // tokens per warp step: the k of the P . V MMA
#define MMA_ROWS 16                                         // query heads per block: the m of the MMAs
#define HEAD_TILES ((GROUP_SIZE + MMA_ROWS - 1) / MMA_ROWS)
#define BLOCK_TILES (HEAD_TILES >= 4 ? 4 : HEAD_TILES >= 2 ? 2 : 1)   // tiles of one decode block (DecodeAttentionKernel)
#define STREAMS (MMA_WARPS / BLOCK_TILES)                            // chunk streams of one decode block
#define TILE_GROUPS ((HEAD_TILES + BLOCK_TILES - 1) / BLOCK_TILES)  // decode blocks per KV head
#define TOKEN_ROWS (GROUP_SIZE <= 8)                                 // decode with tokens as MMA rows (see WarpColumns)
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

#if CACHE_TYPE == 1
typedef bf16_t mma_t;
#else
typedef f16_t mma_t;
#endif

#define STAGE_ROW (HEAD_DIM + 16 / (int)sizeof(cache_t))    // padded row of a staged chunk, pool elements
#define ROW_VECTORS (HEAD_DIM * (int)sizeof(cache_t) / 16)  // 16-byte copies per pool row

// The head dimension of the MMAs' orders (see above): query elements Q_DIM(kk, t) and + 1 are a0 of MMA kk, + Q_HI
// and + Q_HI + 1 are a2; output column c of n-tile n is dimension OUT_DIM(n, c).
#if CACHE_TYPE == 3
#define Q_DIM(kk, t) ((t) * (HEAD_DIM / 4) + 4 * (kk))
#define Q_HI 2
#define OUT_DIM(n, c) ((c) * (HEAD_DIM / 8) + (n))
#define FRAGMENT_COLUMN(d) ((d) % (HEAD_DIM / 8) * 8 + (d) / (HEAD_DIM / 8))   // inverse of OUT_DIM: 8 n + c
#else
#define Q_DIM(kk, t) ((kk) * 16 + 2 * (t))
#define Q_HI 8
#define OUT_DIM(n, c) ((n) * 8 + (c))
#define FRAGMENT_COLUMN(d) (d)
#endif
#if TOKEN_ROWS
#define MERGE_COLUMN(d) (d)                                 // where a decode warp leaves dimension d of its output
#else
#define MERGE_COLUMN(d) FRAGMENT_COLUMN(d)
#endif

// the K/V chunks in flight of one warp (decode) or one block (prefill)
struct MmaChunkStages {
    cache_t k[MMA_STAGES][MMA_CHUNK * STAGE_ROW];
    cache_t v[MMA_STAGES][MMA_CHUNK * STAGE_ROW];
};

// what the warps leave for the merge, in the same shared memory once their chunks are done: o in fragment order
// (column 8 n + c of a row holds output column c of n-tile n)
struct MmaMergeShared {
    float o[MMA_WARPS][MMA_ROWS * HEAD_DIM];
    float m[MMA_WARPS][MMA_ROWS], l[MMA_WARPS][MMA_ROWS];
    float weight[MMA_WARPS][MMA_ROWS];                      // each warp's share of a row: exp2(its max - the row's)
    float m_all[MMA_WARPS * MMA_ROWS], l_all[MMA_WARPS * MMA_ROWS];   // per row of the block
};

__device__ __forceinline__ float fast_exp2(float x) {     // 2^x, -inf -> 0 (MUFU.EX2)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ unsigned int pack2(float lo, float hi) {
    unsigned int r;
#if CACHE_TYPE == 1
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

// two adjacent query elements as one MMA word (bits copied when the query type is the MMA type)
__device__ __forceinline__ unsigned int query_pair(const elem_t* p) {
#if (ELEM_TYPE == 1 && CACHE_TYPE == 1) || (ELEM_TYPE == 2 && CACHE_TYPE != 1)
    return *reinterpret_cast<const unsigned int*>(p);
#else
    return pack2(to_f(p[0]), to_f(p[1]));
#endif
}

// one MMA in mma_t (element_types.cu)
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned int (&a)[4], unsigned int b0, unsigned int b1) {
    mma_m16n8k16<CACHE_TYPE == 1>(d, a, b0, b1);
}

__device__ __forceinline__ void ldmatrix_x4(unsigned int (&r)[4], const void* shared) {
    const unsigned int address = (unsigned int)__cvta_generic_to_shared(shared);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned int (&r)[4], const void* shared) {
    const unsigned int address = (unsigned int)__cvta_generic_to_shared(shared);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

// Where this lane points ldmatrix.x4 in a 16 x 16 tile of a staged chunk (rows STAGE_ROW elements apart), as an
// element offset from the tile's corner: the four 8 x 8 matrices it loads are taken rows first (rows 0-7, rows 8-15,
// then the same rows at columns 8-15: lane / 8 % 2 picks the row half, lane / 16 the column half) or columns first
// (the two halves' roles swapped).
__device__ __forceinline__ int tile_rows_first(int lane) { return (((lane >> 3) & 1) * 8 + (lane & 7)) * STAGE_ROW + (lane >> 4) * 8; }
__device__ __forceinline__ int tile_columns_first(int lane) { return ((lane >> 4) * 8 + (lane & 7)) * STAGE_ROW + ((lane >> 3) & 1) * 8; }

// 16 bytes global -> shared; with valid false the 16 shared bytes are zero-filled and nothing is read
__device__ __forceinline__ void cp_async_16_or_zero(void* shared, const void* global, bool valid) {
    const unsigned int address = (unsigned int)__cvta_generic_to_shared(shared);
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(address), "l"(global), "r"(bytes) : "memory");
}

// Starts the copy of the K and V rows of tokens [first, first + 16) into stage `stage`; rows at or past `end` are
// zeros (their scores are masked, and zero V rows keep 0 x garbage out of the output). The chunk's copies are shared by
// `parts` warps, this one being `part`. Lane r < 16 looks up row r's pool offset; the lanes copying a row take it
// from there. (16 rows x ROW_VECTORS copies are whole warps' worth, so each warp runs the loop uniformly.)
__device__ __forceinline__ void load_chunk(MmaChunkStages& w, int stage, const cache_t* __restrict__ k_cache,
                                           const cache_t* __restrict__ v_cache, const int* __restrict__ table,
                                           int first, int end, int block_size, int num_kv_heads, int kv_head, int lane,
                                           int part, int parts) {
    const int my_token = first + (lane & (MMA_CHUNK - 1));
    long my_offset = 0;
    if (my_token < end) {
        const long slot = (long)table[my_token / block_size] * block_size + my_token % block_size;
        my_offset = (slot * num_kv_heads + kv_head) * HEAD_DIM;
    }
#pragma unroll
    for (int c = part * 32 + lane; c < MMA_CHUNK * ROW_VECTORS; c += 32 * parts) {
        const int r = c / ROW_VECTORS, col = (c % ROW_VECTORS) * (16 / (int)sizeof(cache_t));
        const long offset = __shfl_sync(0xffffffffu, my_offset, r) + col;
        const bool valid = first + r < end;
        const int at = r * STAGE_ROW + col;
        cp_async_16_or_zero(&w.k[stage][at], k_cache + (valid ? offset : 0), valid);
        cp_async_16_or_zero(&w.v[stage][at], v_cache + (valid ? offset : 0), valid);
    }
}

// The warps of one decode chunk stream wait for each other (named barrier 1 + stream; a lone warp syncs itself).
__device__ __forceinline__ void sync_stream(int stream) {
#if BLOCK_TILES == 1
    __syncwarp();
#else
    asm volatile("bar.sync %0, %1;\n" :: "r"(1 + stream), "n"(BLOCK_TILES * 32) : "memory");
#endif
}

// load_chunk by all threads of a block (prefill: the block's warps share the chunk)
__device__ __forceinline__ void load_chunk_block(MmaChunkStages& w, int stage, const cache_t* __restrict__ k_cache,
                                                 const cache_t* __restrict__ v_cache, const int* __restrict__ table,
                                                 int first, int end, int block_size, int num_kv_heads, int kv_head) {
    for (int c = threadIdx.x; c < MMA_CHUNK * ROW_VECTORS; c += blockDim.x) {
        const int r = c / ROW_VECTORS, col = (c % ROW_VECTORS) * (16 / (int)sizeof(cache_t)), token = first + r;
        const bool valid = token < end;
        long offset = 0;
        if (valid) {
            const long slot = (long)table[token / block_size] * block_size + token % block_size;
            offset = (slot * num_kv_heads + kv_head) * HEAD_DIM + col;
        }
        const int at = r * STAGE_ROW + col;
        cp_async_16_or_zero(&w.k[stage][at], k_cache + offset, valid);
        cp_async_16_or_zero(&w.v[stage][at], v_cache + offset, valid);
    }
}

// A warp's running softmax state, both decode layouts: output tiles of four accumulators each, max (log2 units) and sum
// of the two rows or columns a lane holds. Empty: output and sum 0, max -inf.
template <int TILES>
__device__ __forceinline__ void clear_running(float (&o)[TILES][4], float (&m)[2], float (&l)[2]) {
#pragma unroll
    for (int n = 0; n < TILES; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    m[0] = m[1] = NEG_INF;
    l[0] = l[1] = 0.f;
}

// A running max m moved to cover a chunk's max (already reduced over the lanes sharing it) and the running sum l
// rescaled to it; returns the factor the running output must be rescaled by.
__device__ __forceinline__ float advance_running_max(float& m, float& l, float chunk_max) {
    const float m_new = fmaxf(m, chunk_max);
    const float alpha = fast_exp2(m - m_new);
    m = m_new;
    l *= alpha;
    return alpha;
}

// What a warp holds for its 16 query rows (fragment rows g and g + 8 of each lane): their query fragments in the A
// layout (qa[kk] covers dimensions 16 kk .. 16 kk + 15), their running output (o[n] covers dimensions 8n .. 8n + 7,
// float), running max (log2 units) and this lane's part of the running sum.
struct WarpRows {
    unsigned int qa[HEAD_DIM / 16][4];
    float o[HEAD_DIM / 8][4];
    float m[2], l[2];
};

// Queries of rows g (q0) and g + 8 (q8), zero where a row has none; output, max and sum empty.
__device__ __forceinline__ void start_rows(WarpRows& rows, const elem_t* q0, const elem_t* q8, bool has0, bool has8, int t) {
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
        const int d = Q_DIM(kk, t);
        rows.qa[kk][0] = has0 ? query_pair(q0 + d) : 0u;
        rows.qa[kk][1] = has8 ? query_pair(q8 + d) : 0u;
        rows.qa[kk][2] = has0 ? query_pair(q0 + d + Q_HI) : 0u;
        rows.qa[kk][3] = has8 ? query_pair(q8 + d + Q_HI) : 0u;
    }
    clear_running(rows.o, rows.m, rows.l);
}

// The whole sum of each row: the four lanes of a row group hold parts of it.
__device__ __forceinline__ void sum_row_groups(WarpRows& rows) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        rows.l[h] += __shfl_xor_sync(0xffffffffu, rows.l[h], 1);
        rows.l[h] += __shfl_xor_sync(0xffffffffu, rows.l[h], 2);
    }
}

#if CACHE_TYPE == 3
// WORDS 32-bit words from 16-byte-aligned shared memory at p (offset a multiple of the widest load WORDS allows)
template <int WORDS>
__device__ __forceinline__ void load_words(unsigned int (&w)[WORDS], const cache_t* p) {
    if constexpr (WORDS % 4 == 0) {
#pragma unroll
        for (int i = 0; i < WORDS / 4; i++) {
            const uint4 v = reinterpret_cast<const uint4*>(p)[i];
            w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
        }
    } else if constexpr (WORDS % 2 == 0) {
#pragma unroll
        for (int i = 0; i < WORDS / 2; i++) {
            const uint2 v = reinterpret_cast<const uint2*>(p)[i];
            w[2 * i] = v.x; w[2 * i + 1] = v.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < WORDS; i++) w[i] = reinterpret_cast<const unsigned int*>(p)[i];
    }
}

// four e4m3 bytes -> float16 pairs: lo = bytes 0, 1; hi = bytes 2, 3 (the lower byte in the lower half)
__device__ __forceinline__ void e4m3x4_to_f16x2(unsigned int w, unsigned int& lo, unsigned int& hi) {
    asm("{\n .reg .b16 a, b;\n mov.b32 {a, b}, %2;\n cvt.rn.f16x2.e4m3x2 %0, a;\n cvt.rn.f16x2.e4m3x2 %1, b;\n}"
        : "=r"(lo), "=r"(hi) : "r"(w));
}

// The bytes of an FP8 K chunk lane (g, t) reads: [t HEAD_DIM/4, (t + 1) HEAD_DIM/4) of tokens g (k0) and g + 8 (k8);
// word kk of them holds the four dimensions MMA kk takes from this lane (see the file's header).
__device__ __forceinline__ void load_k_words(const cache_t* k, unsigned int (&k0)[HEAD_DIM / 16], unsigned int (&k8)[HEAD_DIM / 16],
                                             int lane) {
    const int g = lane >> 2, t = lane & 3;
    load_words(k0, k + g * STAGE_ROW + t * (HEAD_DIM / 4));
    load_words(k8, k + (g + 8) * STAGE_ROW + t * (HEAD_DIM / 4));
}

// S = Q K^T for the chunk staged at k: s[0] tokens 0..7, s[1] tokens 8..15; word kk of a token's K words is the B
// fragment of MMA kk.
__device__ __forceinline__ void score_chunk(const cache_t* k, const WarpRows& rows, float (&s)[2][4], int lane) {
    unsigned int k0[HEAD_DIM / 16], k8[HEAD_DIM / 16];
    load_k_words(k, k0, k8, lane);
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
        unsigned int b0, b1;
        e4m3x4_to_f16x2(k0[kk], b0, b1);
        mma_16816(s[0], rows.qa[kk], b0, b1);
        e4m3x4_to_f16x2(k8[kk], b0, b1);
        mma_16816(s[1], rows.qa[kk], b0, b1);
    }
}

// The bytes of an FP8 V chunk lane (g, t) reads: [g HEAD_DIM/8, (g + 1) HEAD_DIM/8) of tokens 2t, 2t + 1, 2t + 8 and
// 2t + 9, two tokens' bytes side by side in a word (token a's byte i, token b's byte i, a's i + 1, b's i + 1): word w
// of low01 holds bytes 4w and 4w + 1 of tokens 2t and 2t + 1, high01 bytes 4w + 2 and 4w + 3; low89 and high89 the
// same of tokens 2t + 8 and 2t + 9. Both decode layouts take their V fragments from these words.
struct VBytePairs {
    unsigned int low01[HEAD_DIM / 32], high01[HEAD_DIM / 32], low89[HEAD_DIM / 32], high89[HEAD_DIM / 32];
};

__device__ __forceinline__ void load_v_byte_pairs(const cache_t* v, VBytePairs& p, int lane) {
    const int g = lane >> 2, t = lane & 3;
    unsigned int v0[HEAD_DIM / 32], v1[HEAD_DIM / 32], v8[HEAD_DIM / 32], v9[HEAD_DIM / 32];
    const cache_t* column = v + g * (HEAD_DIM / 8);
    load_words(v0, column + (2 * t) * STAGE_ROW);
    load_words(v1, column + (2 * t + 1) * STAGE_ROW);
    load_words(v8, column + (2 * t + 8) * STAGE_ROW);
    load_words(v9, column + (2 * t + 9) * STAGE_ROW);
#pragma unroll
    for (int w = 0; w < HEAD_DIM / 32; w++) {
        p.low01[w] = __byte_perm(v0[w], v1[w], 0x5140);
        p.high01[w] = __byte_perm(v0[w], v1[w], 0x7362);
        p.low89[w] = __byte_perm(v8[w], v9[w], 0x5140);
        p.high89[w] = __byte_perm(v8[w], v9[w], 0x7362);
    }
}

// O += P V for the chunk staged at v: the byte pairs of tokens 2t, 2t + 1 are this lane's b0, of 2t + 8, 2t + 9 its
// b1; byte j of a token's HEAD_DIM/8 belongs to n-tile j.
__device__ __forceinline__ void accumulate_chunk(const cache_t* v, const unsigned int (&pa)[4], WarpRows& rows, int lane) {
    VBytePairs p;
    load_v_byte_pairs(v, p, lane);
#pragma unroll
    for (int w = 0; w < HEAD_DIM / 32; w++) {
        unsigned int b0[4], b1[4];
        e4m3x4_to_f16x2(p.low01[w], b0[0], b0[1]);
        e4m3x4_to_f16x2(p.high01[w], b0[2], b0[3]);
        e4m3x4_to_f16x2(p.low89[w], b1[0], b1[1]);
        e4m3x4_to_f16x2(p.high89[w], b1[2], b1[3]);
#pragma unroll
        for (int i = 0; i < 4; i++) mma_16816(rows.o[4 * w + i], pa, b0[i], b1[i]);
    }
}
#else
// S = Q K^T for the chunk staged at k: s[0] tokens 0..7, s[1] tokens 8..15 (K's tiles taken columns first).
__device__ __forceinline__ void score_chunk(const cache_t* k, const WarpRows& rows, float (&s)[2][4], int lane) {
    const mma_t* ks = reinterpret_cast<const mma_t*>(k) + tile_columns_first(lane);
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
        unsigned int kb[4];
        ldmatrix_x4(kb, ks + kk * 16);
        mma_16816(s[0], rows.qa[kk], kb[0], kb[1]);
        mma_16816(s[1], rows.qa[kk], kb[2], kb[3]);
    }
}

// O += P V for the chunk staged at v, V transposed by ldmatrix.trans (its tiles taken rows first).
__device__ __forceinline__ void accumulate_chunk(const cache_t* v, const unsigned int (&pa)[4], WarpRows& rows, int lane) {
    const mma_t* vs = reinterpret_cast<const mma_t*>(v) + tile_rows_first(lane);
#pragma unroll
    for (int n = 0; n < HEAD_DIM / 16; n++) {
        unsigned int vb[4];
        ldmatrix_x4_trans(vb, vs + n * 16);
        mma_16816(rows.o[2 * n], pa, vb[0], vb[1]);
        mma_16816(rows.o[2 * n + 1], pa, vb[2], vb[3]);
    }
}
#endif

// One 16-token chunk, the one in stage `stage`, for a warp's 16 query rows: online softmax in log2 units,
// S = Q K^T, P = exp2(S - m), O += P V. The chunk starts at token `first`; rows g and g + 8 of the fragments see
// tokens below limit0 and limit8, and (a sliding window's) from low0 and low8 on. Where a row may have seen nothing
// yet (windowed: its chunks before its window), its running max may still be -inf: `windowed` takes 0 in its place
// in the exponents, so that an empty row stays zero instead of -inf - -inf.
__device__ __forceinline__ void attend_chunk(const MmaChunkStages& stages, int stage, WarpRows& rows, float score_scale,
                                             int first, int limit0, int limit8, int lane,
                                             bool windowed = false, int low0 = 0, int low8 = 0) {
    const int t = lane & 3;
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    score_chunk(stages.k[stage], rows, s, lane);

    // online softmax over the chunk (log2 units); tokens at or past a row's limit score -inf
    float chunk_max[2] = {NEG_INF, NEG_INF};
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int token = first + n * 8 + 2 * t + (i & 1);
            const bool seen = token < (i < 2 ? limit0 : limit8) && (!windowed || token >= (i < 2 ? low0 : low8));
            s[n][i] = seen ? soft_cap(s[n][i] * score_scale, ATTN_SOFTCAP * LOG2E) : NEG_INF;
            chunk_max[i >> 1] = fmaxf(chunk_max[i >> 1], s[n][i]);
        }
    float alpha[2], m_sub[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        chunk_max[h] = fmaxf(chunk_max[h], __shfl_xor_sync(0xffffffffu, chunk_max[h], 1));
        chunk_max[h] = fmaxf(chunk_max[h], __shfl_xor_sync(0xffffffffu, chunk_max[h], 2));
        if (!windowed) {
            alpha[h] = advance_running_max(rows.m[h], rows.l[h], chunk_max[h]);   // finite: a row's first chunk holds a token it sees
            m_sub[h] = rows.m[h];
        } else {
            const float m_new = fmaxf(rows.m[h], chunk_max[h]);
            m_sub[h] = m_new == NEG_INF ? 0.f : m_new;        // nothing seen yet: exp2(-inf - 0) = 0 keeps the row empty
            alpha[h] = fast_exp2(rows.m[h] - m_sub[h]);
            rows.m[h] = m_new;
            rows.l[h] *= alpha[h];
        }
    }
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            s[n][i] = fast_exp2(s[n][i] - m_sub[i >> 1]);
            rows.l[i >> 1] += s[n][i];
        }
#pragma unroll
    for (int n = 0; n < HEAD_DIM / 8; n++) {
        rows.o[n][0] *= alpha[0]; rows.o[n][1] *= alpha[0];
        rows.o[n][2] *= alpha[1]; rows.o[n][3] *= alpha[1];
    }

    // O += P V: P's A fragment is S's accumulator layout
    const unsigned int pa[4] = {pack2(s[0][0], s[0][1]), pack2(s[0][2], s[0][3]), pack2(s[1][0], s[1][1]), pack2(s[1][2], s[1][3])};
    accumulate_chunk(stages.v[stage], pa, rows, lane);
}

#if TOKEN_ROWS
// Decode for groups of up to 8 query heads: the chunk's 16 tokens are the MMA's rows and the group's heads its 8
// columns, so no MMA row is padding (16-row head tiles would leave half or more of every MMA empty):
//   S^T (16 tokens x 8 heads)  = K (16 x HEAD_DIM) . Q^T        HEAD_DIM/16 MMAs, Q^T fragments in registers
//   P^T = exp2(S^T - m), one m per head (column)
//   O^T (HEAD_DIM x 8 heads)  += V^T (HEAD_DIM x 16) . P^T      HEAD_DIM/16 MMAs, P^T from S^T's accumulators by movmatrix
// Lane (g, t) holds heads 2t and 2t + 1 (columns); its rows are tokens g and g + 8 of S^T, and two head dimensions of
// each 16-row tile of O^T (OUT_ROW_DIM). FP8 fragments pair bytes as in the head-tile layout (see the file's header),
// the K bytes of a lane now being the A fragment's rows g and g + 8.
struct WarpColumns {
    unsigned int qb[HEAD_DIM / 16][2];                      // B fragments of Q^T: head g, MMA kk's dimensions
    float o[HEAD_DIM / 16][4];                              // O^T tile mt: dims OUT_ROW_DIM(mt, g, 0 / 1) x heads 2t, 2t + 1
    float m[2], l[2];                                       // heads 2t and 2t + 1 (l: this lane's tokens only, until summed)
};

#if CACHE_TYPE == 3
#define OUT_ROW_DIM(mt, g, hi) ((g) * (HEAD_DIM / 8) + 2 * (mt) + (hi))
#else
#define OUT_ROW_DIM(mt, g, hi) ((mt) * 16 + (g) + 8 * (hi))
#endif

__device__ __forceinline__ unsigned int transpose_8x8(unsigned int x) {   // an 8 x 8 matrix of 16-bit values, warp-wide
    unsigned int y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}

// Query head g's fragments (zero past the group); output, max and sum empty.
__device__ __forceinline__ void start_columns(WarpColumns& c, const elem_t* q, bool has, int t) {
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
        const int d = Q_DIM(kk, t);
        c.qb[kk][0] = has ? query_pair(q + d) : 0u;
        c.qb[kk][1] = has ? query_pair(q + d + Q_HI) : 0u;
    }
    clear_running(c.o, c.m, c.l);
}

// The whole sum of each head: the eight lanes of its column (one per token row group g) hold parts of it.
__device__ __forceinline__ void sum_column_groups(WarpColumns& c) {
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int mask = 4; mask < 32; mask <<= 1) c.l[h] += __shfl_xor_sync(0xffffffffu, c.l[h], mask);
}

// S^T for the chunk staged at k: s[0], s[1] token g, heads 2t, 2t + 1; s[2], s[3] token g + 8.
__device__ __forceinline__ void score_columns(const cache_t* k, const WarpColumns& c, float (&s)[4], int lane) {
#if CACHE_TYPE == 3
    // word kk of token g's K words is the A fragment's row g of MMA kk, token g + 8's its row g + 8
    unsigned int k0[HEAD_DIM / 16], k8[HEAD_DIM / 16];
    load_k_words(k, k0, k8, lane);
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
        unsigned int a[4];
        e4m3x4_to_f16x2(k0[kk], a[0], a[2]);
        e4m3x4_to_f16x2(k8[kk], a[1], a[3]);
        mma_16816(s, a, c.qb[kk][0], c.qb[kk][1]);
    }
#else
    const mma_t* ks = reinterpret_cast<const mma_t*>(k) + tile_rows_first(lane);
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
        unsigned int a[4];
        ldmatrix_x4(a, ks + kk * 16);
        mma_16816(s, a, c.qb[kk][0], c.qb[kk][1]);
    }
#endif
}

// O^T += V^T P^T for the chunk staged at v; b0, b1: P^T's B fragments (tokens 0-7, 8-15).
__device__ __forceinline__ void accumulate_columns(const cache_t* v, unsigned int b0, unsigned int b1, WarpColumns& c, int lane) {
#if CACHE_TYPE == 3
    // the same byte pairs as accumulate_chunk's: bytes 2mt and 2mt + 1 of a token's HEAD_DIM/8 are tile mt's rows g
    // and g + 8
    VBytePairs p;
    load_v_byte_pairs(v, p, lane);
#pragma unroll
    for (int w = 0; w < HEAD_DIM / 32; w++) {
        unsigned int a[2][4];                               // tiles 2w and 2w + 1
        e4m3x4_to_f16x2(p.low01[w], a[0][0], a[0][1]);
        e4m3x4_to_f16x2(p.high01[w], a[1][0], a[1][1]);
        e4m3x4_to_f16x2(p.low89[w], a[0][2], a[0][3]);
        e4m3x4_to_f16x2(p.high89[w], a[1][2], a[1][3]);
        mma_16816(c.o[2 * w], a[0], b0, b1);
        mma_16816(c.o[2 * w + 1], a[1], b0, b1);
    }
#else
    const mma_t* vs = reinterpret_cast<const mma_t*>(v) + tile_columns_first(lane);
#pragma unroll
    for (int mt = 0; mt < HEAD_DIM / 16; mt++) {
        unsigned int a[4];
        ldmatrix_x4_trans(a, vs + mt * 16);
        mma_16816(c.o[mt], a, b0, b1);
    }
#endif
}

// One 16-token chunk of a decode stream for the group's heads: online softmax per head in log2 units, tokens at or
// past `end` masked.
__device__ __forceinline__ void attend_chunk_columns(const MmaChunkStages& stages, int stage, WarpColumns& c, float score_scale,
                                                     int first, int end, int lane) {
    const int g = lane >> 2;
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    score_columns(stages.k[stage], c, s, lane);

    float chunk_max[2] = {NEG_INF, NEG_INF};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        s[i] = first + g + (i >> 1) * 8 < end ? soft_cap(s[i] * score_scale, ATTN_SOFTCAP * LOG2E) : NEG_INF;
        chunk_max[i & 1] = fmaxf(chunk_max[i & 1], s[i]);
    }
    float alpha[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
#pragma unroll
        for (int mask = 4; mask < 32; mask <<= 1) chunk_max[h] = fmaxf(chunk_max[h], __shfl_xor_sync(0xffffffffu, chunk_max[h], mask));
        alpha[h] = advance_running_max(c.m[h], c.l[h], chunk_max[h]);   // finite: every chunk of a stream holds a token
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        s[i] = fast_exp2(s[i] - c.m[i & 1]);
        c.l[i & 1] += s[i];
    }
#pragma unroll
    for (int mt = 0; mt < HEAD_DIM / 16; mt++) {
        c.o[mt][0] *= alpha[0]; c.o[mt][1] *= alpha[1];
        c.o[mt][2] *= alpha[0]; c.o[mt][3] *= alpha[1];
    }
    // P^T's B fragments: S^T's accumulators hold (token g, heads 2t, 2t + 1), the B layout wants (tokens 2t, 2t + 1,
    // head g): the transpose of each 8 x 8 half
    accumulate_columns(stages.v[stage], transpose_8x8(pack2(s[0], s[1])), transpose_8x8(pack2(s[2], s[3])), c, lane);
}
#endif

// Same arguments and outputs as paged_decode_attention. Grid: (numKVHeads x TILE_GROUPS, numDecodes, numPartitions);
// block: MMA_WARPS warps; dynamic shared memory: max(STREAMS x MmaChunkStages, MmaMergeShared).
extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32) paged_decode_attention_mma(
        const elem_t* __restrict__ q, int q_stride, const cache_t* __restrict__ k_cache, const cache_t* __restrict__ v_cache,
        const int* __restrict__ decode_seqs, const int* __restrict__ token_rows,
        const int* __restrict__ block_tables, int max_blocks_per_seq, const int* __restrict__ context_lens,
        int block_size, const int* __restrict__ partition_size_ptr, float scale, int window, const float* __restrict__ kv_scales,
        elem_t* __restrict__ out, float* __restrict__ part_out, float* __restrict__ part_ml, const elem_t* __restrict__ sinks) {
    wait_for_previous_kernel(/*let_next_in*/ false);
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;                  // MMA fragment coordinates: row group, thread in group
    const int stream = warp / BLOCK_TILES, block_tile = warp % BLOCK_TILES;
    MmaChunkStages& ws = reinterpret_cast<MmaChunkStages*>(shared_bytes)[stream];

    const int kv_head = blockIdx.x / TILE_GROUPS, first_tile = blockIdx.x % TILE_GROUPS * BLOCK_TILES;
    const int item = blockIdx.y, part = blockIdx.z;
    const int num_kv_heads = gridDim.x / TILE_GROUPS, num_partitions = gridDim.z, num_heads = num_kv_heads * GROUP_SIZE;
    const int block_first_head = kv_head * GROUP_SIZE + first_tile * MMA_ROWS;               // the block's row 0
    const int block_rows = min(BLOCK_TILES * MMA_ROWS, GROUP_SIZE - first_tile * MMA_ROWS);  // query heads in the block
    const int rows = min(MMA_ROWS, block_rows - block_tile * MMA_ROWS);                      // in this warp's tile (<= 0: none)
    const int seq = decode_seqs[item], row = token_rows[seq];
    const int partition_size = *partition_size_ptr;
    const int context = context_lens[seq];
    const int begin = (window > 0 ? max(0, context - window) : 0) + part * partition_size;   // a sliding layer's window
    const int end = min(context, begin + partition_size);
    if (part > 0 && begin >= end) return;                   // past the context (live_partitions)
    const int* table = block_tables + (long)seq * max_blocks_per_seq;
    const float score_scale = scale * kv_scales[0] * LOG2E, v_scale = kv_scales[1];

#if TOKEN_ROWS
    // the warp's columns: the group's query heads (lane (g, t) loads head g's fragments; zero past the group)
    WarpColumns warp_columns;
    start_columns(warp_columns, q + (long)row * q_stride + (long)(block_first_head + g) * HEAD_DIM, g < rows, t);
#else
    // the warp's rows: its tile's query heads g and g + 8 (zero queries past the group)
    WarpRows warp_rows;
    const elem_t* q0 = q + (long)row * q_stride + (long)(block_first_head + block_tile * MMA_ROWS + g) * HEAD_DIM;
    start_rows(warp_rows, q0, q0 + 8 * HEAD_DIM, g < rows, g + 8 < rows, t);
#endif

    // chunk j of this stream starts at token begin + (stream + j STREAMS) MMA_CHUNK
    const int stream_first = begin + stream * MMA_CHUNK, step = STREAMS * MMA_CHUNK;
    const int chunks = stream_first < end ? (end - stream_first + step - 1) / step : 0;
#pragma unroll
    for (int j = 0; j < MMA_STAGES - 1; j++) {
        if (j < chunks)
            load_chunk(ws, j, k_cache, v_cache, table, stream_first + j * step, end, block_size, num_kv_heads, kv_head, lane,
                       block_tile, BLOCK_TILES);
        cp_async_commit();
    }

    for (int j = 0; j < chunks; j++) {
        const int stage = j % MMA_STAGES;
        if (j + MMA_STAGES - 1 < chunks)
            load_chunk(ws, (j + MMA_STAGES - 1) % MMA_STAGES, k_cache, v_cache, table, stream_first + (j + MMA_STAGES - 1) * step,
                       end, block_size, num_kv_heads, kv_head, lane, block_tile, BLOCK_TILES);
        cp_async_commit();
        asm volatile("cp.async.wait_group %0;\n" :: "n"(MMA_STAGES - 1) : "memory");   // this thread's part of chunk j landed
        sync_stream(stream);                                // ... and every part of it
#if TOKEN_ROWS
        attend_chunk_columns(ws, stage, warp_columns, score_scale, stream_first + j * step, end, lane);
#else
        attend_chunk(ws, stage, warp_rows, score_scale, stream_first + j * step, end, end, lane);
#endif
        sync_stream(stream);                                // the stage may be refilled
    }
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");

    // each warp's output, max and sum per head into shared memory, o in MERGE_COLUMN order
    __syncthreads();                                        // every warp is done with its stages
    MmaMergeShared& merge = *reinterpret_cast<MmaMergeShared*>(shared_bytes);
#if TOKEN_ROWS
    sum_column_groups(warp_columns);
#pragma unroll
    for (int mt = 0; mt < HEAD_DIM / 16; mt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            merge.o[warp][(2 * t + (i & 1)) * HEAD_DIM + OUT_ROW_DIM(mt, g, i >> 1)] = warp_columns.o[mt][i];
    if (g == 0) {
        merge.m[warp][2 * t] = warp_columns.m[0]; merge.l[warp][2 * t] = warp_columns.l[0];
        merge.m[warp][2 * t + 1] = warp_columns.m[1]; merge.l[warp][2 * t + 1] = warp_columns.l[1];
    }
#else
    sum_row_groups(warp_rows);
#pragma unroll
    for (int n = 0; n < HEAD_DIM / 8; n++) {
        const int c = n * 8 + 2 * t;
        merge.o[warp][g * HEAD_DIM + c] = warp_rows.o[n][0];
        merge.o[warp][g * HEAD_DIM + c + 1] = warp_rows.o[n][1];
        merge.o[warp][(g + 8) * HEAD_DIM + c] = warp_rows.o[n][2];
        merge.o[warp][(g + 8) * HEAD_DIM + c + 1] = warp_rows.o[n][3];
    }
    if (t == 0) {
        merge.m[warp][g] = warp_rows.m[0]; merge.l[warp][g] = warp_rows.l[0];
        merge.m[warp][g + 8] = warp_rows.m[1]; merge.l[warp][g + 8] = warp_rows.l[1];
    }
#endif
    __syncthreads();

    // row r of the block is row r % 16 of tile r / 16, held by warps (stream, tile) = (s, r / 16) for every stream s
    for (int r = threadIdx.x; r < block_rows; r += MMA_WARPS * 32) {
        const int tile = r / MMA_ROWS, tile_row = r % MMA_ROWS;
        float m_all = NEG_INF, l_all = 0.f;
#pragma unroll
        for (int s = 0; s < STREAMS; s++) m_all = fmaxf(m_all, merge.m[s * BLOCK_TILES + tile][tile_row]);
#pragma unroll
        for (int s = 0; s < STREAMS; s++) {
            const int w = s * BLOCK_TILES + tile;
            // an empty partition (nothing scored, m_all -inf) weighs nothing
            const float weight = m_all == NEG_INF ? 0.f : exp2f(merge.m[w][tile_row] - m_all);
            merge.weight[w][tile_row] = weight;
            l_all += merge.l[w][tile_row] * weight;
        }
        merge.m_all[r] = m_all;
        merge.l_all[r] = l_all;
    }
    // the whole softmax is here: each row's sink joins its sum (max in log2 units); else paged_attention_reduce adds it
    if (num_partitions == 1 && sinks != nullptr) {
        const elem_t* sink = sinks + block_first_head;
        asm volatile("" : "+l"(sink));   // computed here: hoisted above the chunk loop, it was held through it (a spill)
        for (int r = threadIdx.x; r < block_rows; r += MMA_WARPS * 32)
            merge.l_all[r] += fast_exp2(to_f(sink[r]) * LOG2E - merge.m_all[r]);
    }
    __syncthreads();

    for (int idx = threadIdx.x; idx < block_rows * HEAD_DIM; idx += MMA_WARPS * 32) {
        const int r = idx / HEAD_DIM, d = idx % HEAD_DIM, head = block_first_head + r;
        const int tile = r / MMA_ROWS, tile_row = r % MMA_ROWS, column = tile_row * HEAD_DIM + MERGE_COLUMN(d);
        const float m_all = merge.m_all[r], l_all = merge.l_all[r];
        float o_all = 0.f;
#pragma unroll
        for (int s = 0; s < STREAMS; s++) o_all += merge.o[s * BLOCK_TILES + tile][column] * merge.weight[s * BLOCK_TILES + tile][tile_row];
        if (num_partitions == 1) {
            out[((long)row * num_heads + head) * HEAD_DIM + d] = from_f(l_all > 0.f ? o_all * v_scale / l_all : 0.f);
        } else {
            const long part_row = ((long)item * num_heads + head) * num_partitions + part;
            part_out[part_row * HEAD_DIM + d] = o_all * v_scale;
            if (d == 0) { part_ml[part_row * 2] = m_all * LN2; part_ml[part_row * 2 + 1] = l_all; }   // natural units
        }
    }
}

// Attention of the step's prefill sequences (several new tokens each, causal) over their paged contexts, this step's
// K/V already in the pool. prefills (numPrefills, 3) int32: the sequence's index, its first row in q and out, and its
// query length; the queries are the last query-length positions of its context. The rows of a (sequence, KV head)
// are (query token, head of the group) pairs, token-major: a block takes 64 of them (16 per warp) and walks the
// context up to its last row's position in 16-token chunks, each loaded once for the four warps. Every row sees the
// positions up to its own; window > 0 (a sliding-window layer): only the last `window` of them, and the block starts at
// the chunk of its first row's window. sinks: as paged_decode_attention's. Grid: (numKVHeads, numPrefills, row tiles
// of 64); dynamic shared memory: MmaChunkStages.
extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32) paged_prefill_attention_mma(
        const elem_t* __restrict__ q, int q_stride, const cache_t* __restrict__ k_cache, const cache_t* __restrict__ v_cache,
        const int* __restrict__ prefills, const int* __restrict__ block_tables, int max_blocks_per_seq,
        const int* __restrict__ context_lens, int block_size, float scale, int window, const float* __restrict__ kv_scales,
        elem_t* __restrict__ out, const elem_t* __restrict__ sinks) {
    wait_for_previous_kernel();
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    MmaChunkStages& stages = *reinterpret_cast<MmaChunkStages*>(shared_bytes);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int kv_head = blockIdx.x, num_kv_heads = gridDim.x, num_heads = num_kv_heads * GROUP_SIZE;
    const int seq = prefills[blockIdx.y * 3], first_row = prefills[blockIdx.y * 3 + 1], query_len = prefills[blockIdx.y * 3 + 2];
    const int rows = query_len * GROUP_SIZE, block_row = blockIdx.z * MMA_WARPS * MMA_ROWS;
    if (block_row >= rows) return;                          // a shorter sequence than the grid's longest
    const int first_position = context_lens[seq] - query_len;
    const int* table = block_tables + (long)seq * max_blocks_per_seq;
    const float score_scale = scale * kv_scales[0] * LOG2E, v_scale = kv_scales[1];

    // this lane's rows r0 (fragment row g) and r8 (g + 8); past the sequence's rows: zero queries that see token 0 only
    const int r0 = block_row + warp * MMA_ROWS + g, r8 = r0 + 8;
    const int limit0 = r0 < rows ? first_position + r0 / GROUP_SIZE + 1 : 1;
    const int limit8 = r8 < rows ? first_position + r8 / GROUP_SIZE + 1 : 1;
    const bool windowed = window > 0;   // a row at position p sees p - window + 1 .. p
    const int low0 = windowed ? max(0, limit0 - window) : 0, low8 = windowed ? max(0, limit8 - window) : 0;
    WarpRows warp_rows;
    start_rows(warp_rows,
               q + (long)(first_row + r0 / GROUP_SIZE) * q_stride + (long)(kv_head * GROUP_SIZE + r0 % GROUP_SIZE) * HEAD_DIM,
               q + (long)(first_row + r8 / GROUP_SIZE) * q_stride + (long)(kv_head * GROUP_SIZE + r8 % GROUP_SIZE) * HEAD_DIM,
               r0 < rows, r8 < rows, t);

    // the block reads up to its last row's position; a warp computes up to its own last row's
    const int block_last = min(rows, block_row + MMA_WARPS * MMA_ROWS) - 1;
    const int end = first_position + block_last / GROUP_SIZE + 1;
    const int warp_row = block_row + warp * MMA_ROWS;
    const int warp_end = warp_row < rows ? first_position + min(rows - 1, warp_row + MMA_ROWS - 1) / GROUP_SIZE + 1 : 0;
    // windowed: the block's chunks start at its first row's window, a warp's at its own first row's
    const int block_start = windowed ? max(0, first_position + block_row / GROUP_SIZE + 1 - window) : 0;
    const int warp_start = windowed && warp_row < rows ? max(0, first_position + warp_row / GROUP_SIZE + 1 - window) : 0;
    const int first_chunk = block_start / MMA_CHUNK;
    const int chunks = (end + MMA_CHUNK - 1) / MMA_CHUNK - first_chunk;   // chunk j starts at token (first_chunk + j) MMA_CHUNK
#pragma unroll
    for (int j = 0; j < MMA_STAGES - 1; j++) {
        if (j < chunks)
            load_chunk_block(stages, j, k_cache, v_cache, table, (first_chunk + j) * MMA_CHUNK, end, block_size, num_kv_heads, kv_head);
        cp_async_commit();
    }
    for (int j = 0; j < chunks; j++) {
        const int stage = j % MMA_STAGES, first = (first_chunk + j) * MMA_CHUNK;
        if (j + MMA_STAGES - 1 < chunks)
            load_chunk_block(stages, (j + MMA_STAGES - 1) % MMA_STAGES, k_cache, v_cache, table,
                             (first_chunk + j + MMA_STAGES - 1) * MMA_CHUNK, end, block_size, num_kv_heads, kv_head);
        cp_async_commit();
        asm volatile("cp.async.wait_group %0;\n" :: "n"(MMA_STAGES - 1) : "memory");
        __syncthreads();                                    // chunk j has landed for every thread's copies
        if (first < warp_end && first + MMA_CHUNK > warp_start)
            attend_chunk(stages, stage, warp_rows, score_scale, first, limit0, limit8, lane, windowed, low0, low8);
        __syncthreads();                                    // the stage may be refilled
    }
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");

    sum_row_groups(warp_rows);
    if (sinks != nullptr) {   // each row's sink joins its sum, against its max (log2 units)
        warp_rows.l[0] += exp2f(to_f(sinks[kv_head * GROUP_SIZE + r0 % GROUP_SIZE]) * LOG2E - warp_rows.m[0]);
        warp_rows.l[1] += exp2f(to_f(sinks[kv_head * GROUP_SIZE + r8 % GROUP_SIZE]) * LOG2E - warp_rows.m[1]);
    }
    const float scale0 = v_scale / warp_rows.l[0], scale8 = v_scale / warp_rows.l[1];   // l >= 1: the row's maximum contributes exp2(0)
    elem_t* out0 = out + (long)(first_row + r0 / GROUP_SIZE) * num_heads * HEAD_DIM + (long)(kv_head * GROUP_SIZE + r0 % GROUP_SIZE) * HEAD_DIM;
    elem_t* out8 = out + (long)(first_row + r8 / GROUP_SIZE) * num_heads * HEAD_DIM + (long)(kv_head * GROUP_SIZE + r8 % GROUP_SIZE) * HEAD_DIM;
#pragma unroll
    for (int n = 0; n < HEAD_DIM / 8; n++) {
        const int d0 = OUT_DIM(n, 2 * t), d1 = OUT_DIM(n, 2 * t + 1);
        if (r0 < rows) { out0[d0] = from_f(warp_rows.o[n][0] * scale0); out0[d1] = from_f(warp_rows.o[n][1] * scale0); }
        if (r8 < rows) { out8[d0] = from_f(warp_rows.o[n][2] * scale8); out8[d1] = from_f(warp_rows.o[n][3] * scale8); }
    }
}

#endif
