// Paged decode attention: one query token per sequence against its cached K/V, read through its block
// table. Appended to decoder_kernels.cu (same defines, same elem_t helpers).
//
// One block per (KV head, sequence, partition). The block loads each K/V row of its partition ONCE into
// shared memory and scores it against all GROUP_SIZE query heads of that KV head: GQA's saving in bytes
// is kept all the way down (no repeated K/V). Tiles are double-buffered: the asynchronous copy of tile
// i+1 (cp.async) is in flight while tile i is scored and accumulated, so HBM never waits on arithmetic. Long contexts at small batch are split into partitions
// (flash-decoding); each partition leaves an unnormalized output plus its running max and sum, and
// paged_attention_reduce merges them. With one partition the block writes the final output itself.
//
//   pool slot of token t of a sequence = block_table[t / block_size] * block_size + t % block_size
//
//   block_table[0]       block_table[1]
//   +----+----+----+     +----+----+----+
//   | t0 | t1 | .. |     | tB | .. | .. |      one pool block = block_size slots of (numKVHeads, D)
//   +----+----+----+     +----+----+----+

#define ATTN_THREADS 128
#define NEG_INF __int_as_float(0xff800000)
#define TILE 32                                   // tokens per shared-memory stage (two stages)
// one asynchronous copy moves CVEC_BYTES (-DCACHE_VEC_BYTES: 16, or the whole row when shorter, as FP8 heads of 8
// dimensions are 8 bytes); the preprocessor needs it as a number, so the launcher passes it
#define CVEC_BYTES CACHE_VEC_BYTES
#define CVEC (CVEC_BYTES / (int)sizeof(cache_t))  // pool elements per copy
#define K_ROW (HEAD_DIM + CVEC)                   // padded K row: lanes reading different rows hit different banks
#define HEAD_VECTORS (HEAD_DIM / CVEC)
#define OUT_PER_THREAD ((GROUP_SIZE * HEAD_DIM + ATTN_THREADS - 1) / ATTN_THREADS)

struct __align__(CVEC_BYTES) cvec_t { cache_t v[CVEC]; };

struct AttentionShared {
    cache_t k[2][TILE * K_ROW];
    cache_t v[2][TILE * HEAD_DIM];
    float q[GROUP_SIZE * HEAD_DIM];               // scaled queries of the group
    float p[GROUP_SIZE * TILE];                   // scores, then probabilities, of the tile
    float m[GROUP_SIZE], l[GROUP_SIZE], alpha[GROUP_SIZE];
};

// Copies CVEC_BYTES from global to shared memory without the registers (16 bytes bypass L1, shorter ones cannot).
__device__ __forceinline__ void cp_async_vec(void* shared, const void* global) {
    const unsigned int address = (unsigned int)__cvta_generic_to_shared(shared);
#if CVEC_BYTES == 16
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(address), "l"(global) : "memory");
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" :: "r"(address), "l"(global), "n"(CVEC_BYTES) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most one committed group (the most recent: the next tile) is still in flight.
__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

// Starts the asynchronous copy of `count` K/V rows into stage `stage`.
__device__ void load_tile(AttentionShared& s, int stage, const cache_t* __restrict__ k_cache, const cache_t* __restrict__ v_cache,
                          const int* __restrict__ table, int first, int count, int block_size, int num_kv_heads, int kv_head) {
    for (int c = threadIdx.x; c < TILE * HEAD_VECTORS; c += ATTN_THREADS) {
        const int r = c / HEAD_VECTORS, col = c % HEAD_VECTORS;
        if (r >= count) break;                     // rows grow with c: nothing further is in range
        const int token = first + r;
        const long slot = (long)table[token / block_size] * block_size + token % block_size;
        const long offset = (slot * num_kv_heads + kv_head) * HEAD_DIM + col * CVEC;
        cp_async_vec(&s.k[stage][r * K_ROW + col * CVEC], k_cache + offset);
        cp_async_vec(&s.v[stage][r * HEAD_DIM + col * CVEC], v_cache + offset);
    }
}

// p[g][r] = q_g . k_r for the tile's rows (soft-capped where the model caps), -inf past its end. Thread t scores row t % TILE against query
// heads t / TILE + i * SCORE_STEP, so each K vector read from shared memory serves all its heads.
#define SCORE_STEP (ATTN_THREADS / TILE)
#define SCORES_PER_THREAD ((GROUP_SIZE + SCORE_STEP - 1) / SCORE_STEP)
__device__ void score_tile(AttentionShared& s, int stage, int count) {
    const int r = threadIdx.x % TILE, g0 = threadIdx.x / TILE;
    float dot[SCORES_PER_THREAD];
#pragma unroll
    for (int i = 0; i < SCORES_PER_THREAD; i++) dot[i] = 0.f;
    if (r < count) {
#pragma unroll 2
        for (int col = 0; col < HEAD_VECTORS; col++) {
            const cvec_t k = *reinterpret_cast<const cvec_t*>(&s.k[stage][r * K_ROW + col * CVEC]);
            float kf[CVEC];
#pragma unroll
            for (int j = 0; j < CVEC; j++) kf[j] = to_float(k.v[j]);
#pragma unroll
            for (int i = 0; i < SCORES_PER_THREAD; i++) {
                const int g = g0 + i * SCORE_STEP;
                if (g >= GROUP_SIZE) break;
                const float4* q = reinterpret_cast<const float4*>(&s.q[g * HEAD_DIM + col * CVEC]);
#pragma unroll
                for (int j4 = 0; j4 < CVEC / 4; j4++) {
                    const float4 q4 = q[j4];
                    dot[i] += q4.x * kf[4 * j4] + q4.y * kf[4 * j4 + 1] + q4.z * kf[4 * j4 + 2] + q4.w * kf[4 * j4 + 3];
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < SCORES_PER_THREAD; i++) {
        const int g = g0 + i * SCORE_STEP;
        if (g < GROUP_SIZE) s.p[g * TILE + r] = r < count ? soft_cap(dot[i], ATTN_SOFTCAP) : NEG_INF;
    }
}

// Online softmax: one warp per query head updates its running max m and sum l, turns the tile's scores
// into probabilities, and leaves alpha = exp(m_old - m_new) to rescale the accumulated output.
__device__ void softmax_tile(AttentionShared& s) {
    const int lane = threadIdx.x & 31;
    for (int g = threadIdx.x >> 5; g < GROUP_SIZE; g += ATTN_THREADS / 32) {
        float* p = &s.p[g * TILE];
        float tile_max = NEG_INF;
        for (int r = lane; r < TILE; r += 32) tile_max = fmaxf(tile_max, p[r]);
        tile_max = warp_max(tile_max);
        const float m_old = s.m[g];
        const float m_new = fmaxf(m_old, tile_max);   // finite: every tile has at least one row
        float sum = 0.f;
        for (int r = lane; r < TILE; r += 32) {
            const float e = __expf(p[r] - m_new);
            p[r] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
            const float alpha = __expf(m_old - m_new);
            s.l[g] = s.l[g] * alpha + sum;
            s.m[g] = m_new;
            s.alpha[g] = alpha;
        }
    }
}

// acc[i] is output element (g, d) with g*HEAD_DIM + d = threadIdx.x + i*ATTN_THREADS. When HEAD_DIM divides
// the block, d is fixed per thread and each V element read from shared memory serves all its heads.
__device__ void accumulate_tile(const AttentionShared& s, int stage, float (&acc)[OUT_PER_THREAD], int count) {
#pragma unroll
    for (int i = 0; i < OUT_PER_THREAD; i++) {
        const int idx = threadIdx.x + i * ATTN_THREADS;
        if (idx < GROUP_SIZE * HEAD_DIM) acc[i] *= s.alpha[idx / HEAD_DIM];
    }
#if ATTN_THREADS % HEAD_DIM == 0
    const int d = threadIdx.x % HEAD_DIM, g0 = threadIdx.x / HEAD_DIM;
    for (int r = 0; r < count; r++) {
        const float v = to_float(s.v[stage][r * HEAD_DIM + d]);
#pragma unroll
        for (int i = 0; i < OUT_PER_THREAD; i++) {
            const int g = g0 + i * (ATTN_THREADS / HEAD_DIM);
            if (g < GROUP_SIZE) acc[i] += s.p[g * TILE + r] * v;
        }
    }
#else
    for (int r = 0; r < count; r++) {
#pragma unroll
        for (int i = 0; i < OUT_PER_THREAD; i++) {
            const int idx = threadIdx.x + i * ATTN_THREADS;
            if (idx < GROUP_SIZE * HEAD_DIM)
                acc[i] += s.p[(idx / HEAD_DIM) * TILE + r] * to_float(s.v[stage][r * HEAD_DIM + idx % HEAD_DIM]);
        }
    }
#endif
}

// The partitions that hold some of a context's attended positions (at least partition 0, which holds a sink): a
// captured step's grid has the partitions of the longest context its graph serves, and the blocks of the others
// return at once, writing nothing, and the reduce reads none of them.
__device__ __forceinline__ int live_partitions(int context, int window, int partition_size) {
    const int attended = window > 0 ? min(context, window) : context;
    return max(1, (attended + partition_size - 1) / partition_size);
}

// The decode sequences of a step: decode_seqs (numDecodes) lists which sequences of the batch they are; the partition
// size is read from the device (the step buffers), so a captured step follows each step's contexts; sequence s
// reads its query from row token_rows[s] of q (numTokens, numHeads*D, row stride q_stride) and writes that row of
// out (numTokens, numHeads*D); context_lens (numSeqs), block_tables (numSeqs, max_blocks_per_seq) int32. window > 0: a
// sliding-window layer, whose query sees the last `window` positions of its context (partitions count from there).
// part_out (numDecodes, numHeads, numPartitions, D) and part_ml (numDecodes, numHeads, numPartitions, 2) float32,
// used only when num_partitions > 1. sinks (numHeads) of elem_t, or null: a logit per query head that joins each
// softmax as a key without a value (gpt-oss's), so the real keys' probabilities sum to less than 1; it enters the
// sum once (here as partition 0's first key; the tensor-core kernel adds it where it normalizes, or leaves it to
// paged_attention_reduce). Grid: (numKVHeads, numDecodes, numPartitions).
extern "C" __global__ void __launch_bounds__(ATTN_THREADS) paged_decode_attention(
        const elem_t* __restrict__ q, int q_stride, const cache_t* __restrict__ k_cache, const cache_t* __restrict__ v_cache,
        const int* __restrict__ decode_seqs, const int* __restrict__ token_rows,
        const int* __restrict__ block_tables, int max_blocks_per_seq, const int* __restrict__ context_lens,
        int block_size, const int* __restrict__ partition_size_ptr, float scale, int window, const float* __restrict__ kv_scales,
        elem_t* __restrict__ out, float* __restrict__ part_out, float* __restrict__ part_ml, const elem_t* __restrict__ sinks) {
    wait_for_previous_kernel(/*let_next_in*/ false);
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    AttentionShared& s = *reinterpret_cast<AttentionShared*>(shared_bytes);
    const int kv_head = blockIdx.x, item = blockIdx.y, part = blockIdx.z;
    const int num_kv_heads = gridDim.x, num_partitions = gridDim.z, num_heads = num_kv_heads * GROUP_SIZE;
    const int seq = decode_seqs[item], row = token_rows[seq];
    const int partition_size = *partition_size_ptr;
    const int context = context_lens[seq];
    const int begin = (window > 0 ? max(0, context - window) : 0) + part * partition_size;
    const int end = min(context, begin + partition_size);
    // a partition past the context's end (a captured step keeps its grid while contexts grow; live_partitions) does nothing
    if (part > 0 && begin >= end) return;
    const int* table = block_tables + (long)seq * max_blocks_per_seq;

    // stored K and V are value / scale: K's scale folds into the queries, V's into the output
    const float q_scale = scale * kv_scales[0], v_scale = kv_scales[1];
    for (int idx = threadIdx.x; idx < GROUP_SIZE * HEAD_DIM; idx += ATTN_THREADS)
        s.q[idx] = to_f(q[(long)row * q_stride + kv_head * GROUP_SIZE * HEAD_DIM + idx]) * q_scale;
    // a head's sink is a first key of score sink and value 0, in partition 0 only (the reduce sums the partitions)
    if (threadIdx.x < GROUP_SIZE) {
        const bool sink = sinks != nullptr && part == 0;
        s.m[threadIdx.x] = sink ? to_f(sinks[kv_head * GROUP_SIZE + threadIdx.x]) : NEG_INF;
        s.l[threadIdx.x] = sink ? 1.f : 0.f;
    }
    float acc[OUT_PER_THREAD];
#pragma unroll
    for (int i = 0; i < OUT_PER_THREAD; i++) acc[i] = 0.f;

    if (begin < end) load_tile(s, 0, k_cache, v_cache, table, begin, min(TILE, end - begin), block_size, num_kv_heads, kv_head);
    cp_async_commit();
    for (int first = begin, t = 0; first < end; first += TILE, t++) {
        const int count = min(TILE, end - first), next = first + TILE;
        if (next < end) load_tile(s, (t + 1) & 1, k_cache, v_cache, table, next, min(TILE, end - next), block_size, num_kv_heads, kv_head);
        cp_async_commit();                         // possibly empty: keeps "all but one" meaning "tile t landed"
        cp_async_wait_all_but_one();
        __syncthreads();
        score_tile(s, t & 1, count);
        __syncthreads();
        softmax_tile(s);
        __syncthreads();
        accumulate_tile(s, t & 1, acc, count);
        __syncthreads();                           // stage t&1 and p are free for tile t+2 / the next scores
    }
    __syncthreads();                               // m and l are visible even when the partition was empty

#pragma unroll
    for (int i = 0; i < OUT_PER_THREAD; i++) {
        const int idx = threadIdx.x + i * ATTN_THREADS;
        if (idx >= GROUP_SIZE * HEAD_DIM) continue;
        const int g = idx / HEAD_DIM, d = idx % HEAD_DIM, head = kv_head * GROUP_SIZE + g;
        if (num_partitions == 1) {
            const float l = s.l[g];
            out[((long)row * num_heads + head) * HEAD_DIM + d] = from_f(l > 0.f ? acc[i] * v_scale / l : 0.f);
        } else {
            const long part_row = ((long)item * num_heads + head) * num_partitions + part;
            part_out[part_row * HEAD_DIM + d] = acc[i] * v_scale;
            if (d == 0) { part_ml[part_row * 2] = s.m[g]; part_ml[part_row * 2 + 1] = s.l[g]; }
        }
    }
}

// Merges the partitions of both decode attention kernels: those live_partitions counts (the others wrote nothing). Past
// that count its loads do not wait on one another: the partitions' max and sum (into shared memory), the first
// REDUCE_HELD partial outputs (into registers) and the output row are asked for together, one round trip to L2
// instead of one per dependent load.
// The sums run over the partitions in order, as a plain loop would; a sink (sinks, as the decode kernels take them)
// joins the sum last (null after the CUDA-core kernel, which counts it in its partition 0). Grid: (numHeads, numDecodes); block: HEAD_DIM threads; dynamic shared memory: a float2 per
// partition.
#define REDUCE_HELD 8
extern "C" __global__ void paged_attention_reduce(const float* __restrict__ part_out, const float2* __restrict__ part_ml,
                                                  const int* __restrict__ decode_seqs, const int* __restrict__ token_rows,
                                                  const int* __restrict__ context_lens, const int* __restrict__ partition_size_ptr,
                                                  int window, int num_partitions, elem_t* __restrict__ out,
                                                  const elem_t* __restrict__ sinks) {
    wait_for_previous_kernel(/*let_next_in*/ false);
    extern __shared__ float2 ml[];                 // (max, sum) of each partition
    const int head = blockIdx.x, item = blockIdx.y, num_heads = gridDim.x, d = threadIdx.x;
    const long row0 = ((long)item * num_heads + head) * num_partitions;
    const float* o_p = part_out + row0 * HEAD_DIM + d;
    const int seq = decode_seqs[item], row = token_rows[seq];
    const int live = live_partitions(context_lens[seq], window, *partition_size_ptr);
    for (int p = d; p < live; p += blockDim.x) ml[p] = part_ml[row0 + p];
    float held[REDUCE_HELD];
#pragma unroll
    for (int p = 0; p < REDUCE_HELD; p++) held[p] = p < live ? o_p[(long)p * HEAD_DIM] : 0.f;
    __syncthreads();
    float m = NEG_INF;
    for (int p = 0; p < live; p++) m = fmaxf(m, ml[p].x);
    float l = 0.f, o = 0.f;
    auto add_partition = [&](int p, float partial) {   // partition p's sum and output, weighed exp(m_p - m)
        const float w = __expf(ml[p].x - m);
        l += ml[p].y * w;
        o += partial * w;
    };
#pragma unroll
    for (int p = 0; p < REDUCE_HELD; p++)
        if (p < live) add_partition(p, held[p]);
    for (int p = REDUCE_HELD; p < live; p++) add_partition(p, o_p[(long)p * HEAD_DIM]);
    if (sinks != nullptr) l += __expf(to_f(sinks[head]) - m);
    out[((long)row * num_heads + head) * HEAD_DIM + d] = from_f(l > 0.f ? o / l : 0.f);
}
