// A mixture's routing around its expert products, in three launches where TorchOps takes some thirty a layer (a softmax,
// a top-k, gathers, three sorts, a search, a product and a sum a pick): which experts each token takes and their
// weights (expert_choice), the slots grouped by expert (expert_groups), and each token's weighted sum of its experts'
// outputs (expert_combine); a step of at most 8 tokens chooses and groups in one launch (expert_route), which may
// compute the router's logits too. Each computes
// what its TorchOps counterpart computes (DecoderStep.ChooseExperts, GroupExperts, RouteExperts, CombineExperts),
// rounded where those ops round.
// Compiled after element_types.cu (elem_t, to_f, from_f, rnd, wait_for_previous_kernel) and paged_attention.cu (NEG_INF).

// A router logit, read through L2 (ld.global.cg): expert_route may read logits its other blocks wrote in the same
// launch, which no multiprocessor's L1 may hold stale.
__device__ __forceinline__ float load_logit(const void* logits, int logits_f32, long i) {
#if ELEM_TYPE != 0
    if (!logits_f32) {   // the model's 16-bit type
        unsigned short bits;
        asm volatile("ld.global.cg.u16 %0, [%1];" : "=h"(bits) : "l"((const unsigned short*)logits + i));
        return to_f(elem_t{bits});
    }
#endif
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"((const float*)logits + i));
    return v;
}

// A candidate's place in torch.topk's order as one 64-bit key, the larger first: its value's order above its expert's
// complement. The value: NaN the largest (any sign), -0 as +0 (they tie), else the float's sign-magnitude bits made
// an unsigned order (negatives flipped). The expert: on a tie the lower one. Every candidate's key is above 0 (-inf's
// is 0x007fffff in the high word), so 0 is none.
__device__ __forceinline__ unsigned long long route_key(float v, int e) {
    const unsigned int bits = __float_as_uint(v == 0.f ? 0.f : v);
    const unsigned int order = isnan(v) ? 0xffffffffu : (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
    return ((unsigned long long)order << 32) | (unsigned int)~e;
}

// ---------------------------------------------------------------------------------------------------
// Each token's top-k experts and their weights, one warp a token:
//   logits (tokens, experts) contiguous, float32 where logits_f32 else elem_t; experts <= 32 x PER_LANE (the launch
//     takes the entry point of the fewest values a lane, expert_choice_1 .. _32: a warp runs this alone, latency-bound,
//     so its code holds just the loops of its experts' count), k <= min(32, experts)
//   softmax_first 1: probabilities p = softmax(logits) in float32 as PyTorch's warp softmax computes it (width =
//     min(pow2(experts), 32) lanes; lane l holds logits it x width + l; its exps summed in order, then a butterfly
//     over the width; p = exp / sum); the k largest p (+ choice_bias (experts) float32 where given), weighed by their p
//     (normalize: divided by their sum, added in the order chosen)
//   softmax_first 0: the k largest logits, weighed by their softmax (PyTorch's over pow2(k) lanes: a butterfly sum)
//   chosen (tokens, k) int64, largest first (ties: the lower expert); weights (tokens, k) elem_t
// Lane r keeps pick r (its expert and its p or logit): no array indexed at run time, so nothing in local memory.
// choose_experts is one token's, by its whole warp; lane r < k returns pick r's expert and weight as written (the
// other lanes: -1 and 0).
// ---------------------------------------------------------------------------------------------------
template <int PER_LANE>
__device__ __forceinline__ void choose_experts(int token, const void* __restrict__ logits, int logits_f32,
                                               const float* __restrict__ choice_bias, long long* __restrict__ chosen,
                                               elem_t* __restrict__ weights, int experts, int k, int softmax_first,
                                               int normalize, int& lane_pick, elem_t& lane_weight) {
    const int lane = threadIdx.x & 31;
    int pow2 = 1;
    while (pow2 < experts) pow2 <<= 1;
    const int width = pow2 < 32 ? pow2 : 32, width_log2 = __ffs(width) - 1;   // expert e: lane e % width, value e / width
    const long row = (long)token * experts;

    // the lane's experts it x width + lane (none past the experts: -inf, which adds 0 to the sums below)
    float value[PER_LANE], p[PER_LANE];                     // the choice's value (logit or p + bias); p
    float largest = NEG_INF;
#pragma unroll
    for (int it = 0; it < PER_LANE; it++) {
        const int e = it * width + lane;
        const bool held = lane < width && e < experts;
        value[it] = held ? load_logit(logits, logits_f32, row + e) : NEG_INF;
        largest = fmaxf(largest, value[it]);
    }
    if (softmax_first) {
        for (int o = width / 2; o > 0; o >>= 1) largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, o));
        float sum = 0.f;
#pragma unroll
        for (int it = 0; it < PER_LANE; it++) {
            p[it] = expf(value[it] - largest);
            sum += p[it];
        }
        for (int o = width / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
#pragma unroll
        for (int it = 0; it < PER_LANE; it++) {
            const int e = it * width + lane;
            p[it] /= sum;
            if (lane < width && e < experts) value[it] = choice_bias ? p[it] + choice_bias[e] : p[it];
        }
    }

    // k rounds of a warp-wide max of the keys; each round's winner taken out by the lane that holds it, kept by lane r
    unsigned long long key[PER_LANE];
#pragma unroll
    for (int it = 0; it < PER_LANE; it++) {
        const int e = it * width + lane;
        key[it] = lane < width && e < experts ? route_key(value[it], e) : 0ull;
    }
    int pick = -1;
    float pick_p = 0.f;                                     // its p (softmax_first) or its logit
#pragma unroll 1
    for (int r = 0; r < k; r++) {
        unsigned long long best = 0ull;
#pragma unroll
        for (int it = 0; it < PER_LANE; it++) best = key[it] > best ? key[it] : best;
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
            best = other > best ? other : best;
        }
        const int e = ~(int)(unsigned int)best, holder = e & (width - 1), held_at = e >> width_log2;
        float weight = 0.f;                                 // the winner's p or logit, at its holder
#pragma unroll
        for (int it = 0; it < PER_LANE; it++)
            if (it == held_at) {
                weight = softmax_first ? p[it] : value[it];
                if (lane == holder) key[it] = 0ull;
            }
        weight = __shfl_sync(0xffffffffu, weight, holder);
        if (lane == r) {
            pick = e;
            pick_p = weight;
        }
    }

    float weight;
    if (softmax_first) {
        float sum = 0.f;                                    // in the order chosen
        if (normalize) {
#pragma unroll 1
            for (int r = 0; r < k; r++) sum += __shfl_sync(0xffffffffu, pick_p, r);
        }
        weight = normalize ? pick_p / sum : pick_p;
    } else {
        // the softmax of the top k logits (largest first: pick 0's is their max), summed as a butterfly over pow2(k)
        // lanes (the lanes past k2 sum zeros among themselves)
        int k2 = 1;
        while (k2 < k) k2 <<= 1;
        const float top = __shfl_sync(0xffffffffu, pick_p, 0);
        const float exp_p = lane < k ? expf(pick_p - top) : 0.f;
        float sums = exp_p;
        for (int o = k2 / 2; o > 0; o >>= 1) sums += __shfl_xor_sync(0xffffffffu, sums, o);
        weight = exp_p / __shfl_sync(0xffffffffu, sums, 0);
    }
    lane_pick = lane < k ? pick : -1;
    lane_weight = from_f(lane < k ? weight : 0.f);
    if (lane < k) {
        chosen[(long)token * k + lane] = pick;
        weights[(long)token * k + lane] = lane_weight;
    }
}

#define EXPERT_CHOICE(PER_LANE)                                                                                          \
    extern "C" __global__ void expert_choice_##PER_LANE(const void* __restrict__ logits, int logits_f32,                 \
            const float* __restrict__ choice_bias, long long* __restrict__ chosen, elem_t* __restrict__ weights,          \
            int tokens, int experts, int k, int softmax_first, int normalize) {                                          \
        wait_for_previous_kernel();                                                                                      \
        const int token = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);                                     \
        int pick;                                                                                                        \
        elem_t weight;                                                                                                   \
        if (token < tokens)                                 /* the whole warp */                                         \
            choose_experts<PER_LANE>(token, logits, logits_f32, choice_bias, chosen, weights, experts, k, softmax_first, \
                                     normalize, pick, weight);                                                           \
    }
EXPERT_CHOICE(1)
EXPERT_CHOICE(2)
EXPERT_CHOICE(4)
EXPERT_CHOICE(8)
EXPERT_CHOICE(16)
EXPERT_CHOICE(32)

// ---------------------------------------------------------------------------------------------------
// The exclusive prefix sums of v over the block's threads in thread order (.x and .y apart), and their totals; the
// whole block calls it (two barriers; its shared scratch free again when it returns).
// ---------------------------------------------------------------------------------------------------
__device__ __forceinline__ int2 block_exclusive_sums(int2 v, int2& total) {
    __shared__ int2 warp_sums[32];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    int2 sum = v;
    for (int o = 1; o < 32; o <<= 1) {
        const int x = __shfl_up_sync(0xffffffffu, sum.x, o), y = __shfl_up_sync(0xffffffffu, sum.y, o);
        if (lane >= o) {
            sum.x += x;
            sum.y += y;
        }
    }
    if (lane == 31) warp_sums[warp] = sum;
    __syncthreads();
    int2 before = make_int2(sum.x - v.x, sum.y - v.y);
    total = make_int2(0, 0);
#pragma unroll 4
    for (int w = 0; w < warps; w++) {
        const int2 s = warp_sums[w];
        if (w < warp) {
            before.x += s.x;
            before.y += s.y;
        }
        total.x += s.x;
        total.y += s.y;
    }
    __syncthreads();
    return before;
}

// ---------------------------------------------------------------------------------------------------
// Where each expert's grouped rows start, from its count of rows, by the whole block: first (experts + 1) shared
// ints holds the counts on entry and the starts on return (first[experts]: the slots); the same written to starts
// (experts + 1) int64, and active (experts) int64 the experts with rows in order, then the others in order. Every
// thread sees all of first on return.
// ---------------------------------------------------------------------------------------------------
__device__ __forceinline__ void place_expert_rows(int* first, long long* __restrict__ starts, long long* __restrict__ active,
                                                  int experts) {
    int rows = 0, held = 0;                    // the rows and the experts with rows before this chunk of experts
#pragma unroll 1
    for (int e0 = 0; e0 < experts; e0 += blockDim.x) {
        const int e = e0 + threadIdx.x;
        const int count = e < experts ? first[e] : 0;
        int2 total;
        const int2 before = block_exclusive_sums(make_int2(count, count > 0), total);
        if (e < experts) first[e] = starts[e] = rows + before.x;
        if (count > 0) active[held + before.y] = e;
        rows += total.x;
        held += total.y;
    }
    if (threadIdx.x == 0) first[experts] = starts[experts] = rows;
    __syncthreads();
#pragma unroll 1
    for (int e0 = 0; e0 < experts; e0 += blockDim.x) {   // then the experts without rows
        const int e = e0 + threadIdx.x;
        const bool none = e < experts && first[e + 1] == first[e];
        int2 total;
        const int2 before = block_exclusive_sums(make_int2(none, 0), total);
        if (none) active[held + before.x] = e;
        held += total.x;
    }
}

// ---------------------------------------------------------------------------------------------------
// A step's slots (token t's pick j at t x k + j) grouped by expert as ExpertGroups lays them out, in one block:
// each token's picks put in expert order (and its weights with them), then every slot's row among the grouped ones:
// its expert's start plus the tokens before it that chose that expert (tokens in order within an expert).
//   chosen (tokens, k) int64 (a token's experts distinct), weights (tokens, k) elem_t
//   -> weights_sorted (tokens, k); row_of_slot (tokens x k), tokens_of_row (slots), expert_of_row (slots) int64;
//      starts (experts + 1) int64, expert e's rows starts[e] .. starts[e + 1]; active (experts) int64, the experts
//      with rows in order, then the others in order
//   dynamic shared memory: (tokens x k + experts + 1) ints; experts <= 1024, k <= 32; one block of a multiple of 32 threads
// ---------------------------------------------------------------------------------------------------
extern "C" __global__ void expert_groups(const long long* __restrict__ chosen, const elem_t* __restrict__ weights,
                                         elem_t* __restrict__ weights_sorted, long long* __restrict__ row_of_slot,
                                         long long* __restrict__ tokens_of_row, long long* __restrict__ expert_of_row,
                                         long long* __restrict__ starts, long long* __restrict__ active, int tokens, int k, int experts) {
    wait_for_previous_kernel();
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    int* picks = (int*)shared_bytes;           // (tokens x k): each token's experts in order
    int* first = picks + tokens * k;           // (experts + 1): counts, then where each expert's rows start
#pragma unroll 1
    for (int e = threadIdx.x; e <= experts; e += blockDim.x) first[e] = 0;
    __syncthreads();
#pragma unroll 1
    for (int s = threadIdx.x; s < tokens * k; s += blockDim.x) {
        // slot s's place among its token's picks in expert order: the picks of lower experts (a token's experts are
        // distinct)
        const long long* mine = chosen + (long)(s / k) * k;
        const int e = (int)chosen[s];
        int place = 0;
        for (int i = 0; i < k; i++) place += mine[i] < e;
        const int sorted = s - s % k + place;
        picks[sorted] = e;
        weights_sorted[sorted] = weights[s];
        atomicAdd(&first[e], 1);
    }
    __syncthreads();
    place_expert_rows(first, starts, active, experts);
    // warp w places the slots of experts w, w + warps, ...: 32 tokens at a time, in token order
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const unsigned int below = (1u << lane) - 1u;   // the lanes before this one
#pragma unroll 1
    for (int e = warp; e < experts; e += warps) {
        if (first[e + 1] == first[e]) continue;
        int placed = first[e];
#pragma unroll 1
        for (int t0 = 0; t0 < tokens; t0 += 32) {
            const int t = t0 + lane;
            int slot = -1;
#pragma unroll 1
            for (int j = 0; t < tokens && j < k; j++) slot = picks[t * k + j] == e ? t * k + j : slot;
            __syncwarp();   // CUDA 11.8's ptxas crashes on this ballot after the loop without it
            const unsigned int hits = __ballot_sync(0xffffffffu, slot >= 0);
            if (slot >= 0) {
                const int row = placed + __popc(hits & below);
                row_of_slot[slot] = row;
                tokens_of_row[row] = t;
                expert_of_row[row] = e;
            }
            placed += __popc(hits);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// expert_choice_N then expert_groups in one block, for a step of at most 8 tokens (a decode step of up to 8
// sequences: one launch a MoE layer where two), with expert_groups' outputs and chosen and weights as expert_choice
// writes them. Warp t chooses token t's experts, lane r holding pick r; the warp puts its picks in expert order by
// shuffles and marks each in its expert's takers (a bit a token); then the block places the experts' rows from the
// takers' counts, and each pick's row is its expert's start plus the takers before its token.
// Arguments: expert_choice's, then expert_groups' outputs; dynamic shared memory (2 x experts + 1) ints; 256 threads.
// expert_route_N below may compute the logits first (router_product_then_last).
// ---------------------------------------------------------------------------------------------------
template <int PER_LANE>
__device__ __forceinline__ void route_experts(const void* __restrict__ logits, int logits_f32, const float* __restrict__ choice_bias,
                                              long long* __restrict__ chosen, elem_t* __restrict__ weights, int tokens,
                                              int experts, int k, int softmax_first, int normalize,
                                              elem_t* __restrict__ weights_sorted, long long* __restrict__ row_of_slot,
                                              long long* __restrict__ tokens_of_row, long long* __restrict__ expert_of_row,
                                              long long* __restrict__ starts, long long* __restrict__ active) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    unsigned int* takers = (unsigned int*)shared_bytes;   // (experts): the tokens that chose each expert, a bit a token
    int* first = (int*)(takers + experts);                // (experts + 1): counts, then where each expert's rows start
#pragma unroll 1
    for (int e = threadIdx.x; e < experts; e += blockDim.x) takers[e] = 0u;
    __syncthreads();
    const int token = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int pick = -1, place = 0;                             // lane r < k: pick r, and its place among the token's picks
    if (token < tokens) {                                 // the whole warp
        elem_t weight;
        choose_experts<PER_LANE>(token, logits, logits_f32, choice_bias, chosen, weights, experts, k, softmax_first,
                                 normalize, pick, weight);
#pragma unroll 1
        for (int r = 0; r < k; r++) place += __shfl_sync(0xffffffffu, pick, r) < pick;   // a token's experts are distinct
        if (lane < k) {
            weights_sorted[token * k + place] = weight;
            atomicOr(&takers[pick], 1u << token);
        }
    }
    __syncthreads();
#pragma unroll 1
    for (int e = threadIdx.x; e < experts; e += blockDim.x) first[e] = __popc(takers[e]);
    __syncthreads();
    place_expert_rows(first, starts, active, experts);
    if (token < tokens && lane < k) {
        const int row = first[pick] + __popc(takers[pick] & ((1u << token) - 1u));
        row_of_slot[token * k + place] = row;
        tokens_of_row[row] = token;
        expert_of_row[row] = pick;
    }
}

// ---------------------------------------------------------------------------------------------------
// The router's product inside expert_route: logits = x router^T (+ router_bias) rounded to elem_t, as the router's
// Linear computes it but for the order of its float32 sums (within a step of elem_t of cuBLAS's). A block an expert
// (blockIdx.x): each thread takes a share of the hidden vectors and loads the expert's vector once for every token (at
// most ROUTE_TOKENS, from FusedKernels.Defines), so that its loads are in flight together; its sums are added across
// the block in warp order.
// Then the block counts itself in at arrivals (an int in device memory, 0 between launches); the last block to arrive
// sets it back to 0 and gets true: every logit is written and visible to it (each block fences its writes before it
// counts itself in; the routing reads them through L2, load_logit).
//   x (tokens, hidden), router (experts, hidden) of elem_t, rows of whole 16-byte vectors; router_bias (experts) or
//   null; logits (tokens, experts)
// ---------------------------------------------------------------------------------------------------
__device__ __forceinline__ bool router_product_then_last(const elem_t* __restrict__ x, const elem_t* __restrict__ router,
                                                         const elem_t* __restrict__ router_bias, elem_t* __restrict__ logits,
                                                         int tokens, int experts, int hidden, int* arrivals) {
    __shared__ float warp_sums[32][ROUTE_TOKENS];
    const int e = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int vectors = hidden / (int)VEC;
    const vec_t* w = reinterpret_cast<const vec_t*>(router) + (long)e * vectors;
    const vec_t* rows = reinterpret_cast<const vec_t*>(x);
    float sum[ROUTE_TOKENS];                               // over this thread's vectors, a token each
#pragma unroll
    for (int t = 0; t < ROUTE_TOKENS; t++) sum[t] = 0.f;
#pragma unroll 1
    for (int c = threadIdx.x; c < vectors; c += blockDim.x) {
        const vec_t wv = w[c];
        vec_t xv[ROUTE_TOKENS];
#pragma unroll
        for (int t = 0; t < ROUTE_TOKENS; t++)
            if (t < tokens) xv[t] = rows[(long)t * vectors + c];
#pragma unroll
        for (int t = 0; t < ROUTE_TOKENS; t++)
            if (t < tokens) {
#pragma unroll
                for (int j = 0; j < (int)VEC; j++) sum[t] += to_f(wv.v[j]) * to_f(xv[t].v[j]);
            }
    }
#pragma unroll
    for (int t = 0; t < ROUTE_TOKENS; t++)
        if (t < tokens) {
            const float s = warp_sum(sum[t]);
            if (lane == 0) warp_sums[warp][t] = s;
        }
    __syncthreads();
    if (threadIdx.x < tokens) {
        float logit = 0.f;
#pragma unroll 1
        for (int i = 0; i < warps; i++) logit += warp_sums[i][threadIdx.x];
        if (router_bias != nullptr) logit += to_f(router_bias[e]);
        logits[(long)threadIdx.x * experts + e] = from_f(logit);
    }
    __threadfence();
    __syncthreads();
    __shared__ bool last;
    if (threadIdx.x == 0) {
        last = atomicAdd(arrivals, 1) == (int)(gridDim.x * gridDim.y) - 1;
        if (last) *arrivals = 0;
    }
    __syncthreads();
    return last;
}

// expert_route_N: with router null, one block routing logits (route_experts); else a block an expert computing the
// router's product into logits first (router_product_then_last), the last of them routing. logits is neither const
// nor __restrict__: the launch may write it, then read it back.
#define EXPERT_ROUTE(PER_LANE)                                                                                           \
    extern "C" __global__ void expert_route_##PER_LANE(void* logits, int logits_f32,                                     \
            const float* __restrict__ choice_bias, long long* __restrict__ chosen, elem_t* __restrict__ weights,          \
            int tokens, int experts, int k, int softmax_first, int normalize, elem_t* __restrict__ weights_sorted,        \
            long long* __restrict__ row_of_slot, long long* __restrict__ tokens_of_row,                                   \
            long long* __restrict__ expert_of_row, long long* __restrict__ starts, long long* __restrict__ active,        \
            const elem_t* __restrict__ x, const elem_t* __restrict__ router, const elem_t* __restrict__ router_bias,      \
            int hidden, int* arrivals) {                                                                                 \
        wait_for_previous_kernel();                                                                                      \
        if (router != nullptr                                                                                            \
            && !router_product_then_last(x, router, router_bias, (elem_t*)logits, tokens, experts, hidden, arrivals))    \
            return;                                                                                                      \
        route_experts<PER_LANE>(logits, logits_f32, choice_bias, chosen, weights, tokens, experts, k, softmax_first,     \
                                normalize, weights_sorted, row_of_slot, tokens_of_row, expert_of_row, starts, active);   \
    }
EXPERT_ROUTE(1)
EXPERT_ROUTE(2)
EXPERT_ROUTE(4)
EXPERT_ROUTE(8)
EXPERT_ROUTE(16)
EXPERT_ROUTE(32)

// ---------------------------------------------------------------------------------------------------
// Each token's experts' outputs weighed and summed as ExpertGroups.Combine's ops round them: its first pick's (in
// expert order) output times its weight, then each next product added; where bias (experts, hidden) is given
// (gpt-oss's down bias), a grouped row has its expert's bias added first.
//   grouped (slots, hidden), row_of_slot (tokens x k), weights_sorted (tokens, k), expert_of_row (slots);
//   out (tokens, hidden); total = tokens x hidden
// ---------------------------------------------------------------------------------------------------
extern "C" __global__ void expert_combine(const elem_t* __restrict__ grouped, const long long* __restrict__ row_of_slot,
                                          const elem_t* __restrict__ weights_sorted, const elem_t* __restrict__ bias,
                                          const long long* __restrict__ expert_of_row, elem_t* __restrict__ out,
                                          int hidden, int k, long total) {
    wait_for_previous_kernel();
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < total; c += (long)gridDim.x * blockDim.x) {
        const long token = c / hidden;
        const int h = (int)(c % hidden);
        float sum = 0.f;
        for (int j0 = 0; j0 < k; j0 += 8) {
            // 8 picks' loads issued together (their latency paid once, not a pick at a time), then added in order
            long row[8];
            float g[8], w[8];
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (j0 + i < k) {
                    row[i] = row_of_slot[token * k + j0 + i];
                    w[i] = to_f(weights_sorted[token * k + j0 + i]);
                }
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (j0 + i < k) {
                    g[i] = to_f(grouped[row[i] * hidden + h]);
                    if (bias) g[i] = rnd(g[i] + to_f(bias[expert_of_row[row[i]] * hidden + h]));
                }
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (j0 + i < k) {
                    const float product = rnd(g[i] * w[i]);
                    sum = j0 + i == 0 ? product : rnd(sum + product);
                }
        }
        out[c] = from_f(sum);
    }
}
