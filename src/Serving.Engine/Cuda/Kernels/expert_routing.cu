// A mixture's routing around its expert products, in three launches where TorchOps takes some thirty a layer (a softmax,
// a top-k, gathers, three sorts, a search, a product and a sum a pick): which experts each token takes and their
// weights (expert_choice), the slots grouped by expert (expert_groups), and each token's weighted sum of its experts'
// outputs (expert_combine); a step of at most 8 tokens chooses and groups in one launch (expert_route). Each computes
// what its TorchOps counterpart computes (DecoderStep.ChooseExperts, GroupExperts, RouteExperts, CombineExperts),
// rounded where those ops round.
// Compiled after element_types.cu (elem_t, to_f, from_f, rnd, wait_for_previous_kernel) and paged_attention.cu (NEG_INF).

// (v, e, p) becomes the candidate (ov, oe, op) where that goes first: the larger value (NaN the largest, as
// torch.topk orders it), on a tie the lower expert; an expert < 0 is none (every held one goes before it)
__device__ __forceinline__ void route_better(float& v, int& e, float& p, float ov, int oe, float op) {
    bool before;
    if (oe < 0 || e < 0) before = oe >= 0;
    else if (isnan(ov) || isnan(v)) before = isnan(ov) && (!isnan(v) || oe < e);
    else before = ov > v || (ov == v && oe < e);
    if (before) { v = ov; e = oe; p = op; }
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
// choose_experts is one token's, by its whole warp.
// ---------------------------------------------------------------------------------------------------
template <int PER_LANE>
__device__ __forceinline__ void choose_experts(int token, const void* __restrict__ logits, int logits_f32,
                                               const float* __restrict__ choice_bias, long long* chosen, elem_t* weights,
                                               int experts, int k, int softmax_first, int normalize) {
    const int lane = threadIdx.x & 31;
    int pow2 = 1;
    while (pow2 < experts) pow2 <<= 1;
    const int width = pow2 < 32 ? pow2 : 32;
    const float* row32 = (const float*)logits + (long)token * experts;
    const elem_t* row16 = (const elem_t*)logits + (long)token * experts;

    // the lane's experts it x width + lane (none past the experts: -inf, which adds 0 to the sums below)
    float value[PER_LANE], p[PER_LANE];                     // the choice's value (logit or p + bias); p
    float largest = NEG_INF;
#pragma unroll
    for (int it = 0; it < PER_LANE; it++) {
        const int e = it * width + lane;
        const bool held = lane < width && e < experts;
        value[it] = held ? (logits_f32 ? row32[e] : to_f(row16[e])) : NEG_INF;
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

    // k rounds of a warp-wide arg max; each round's winner taken out by the lane that holds it, kept by lane r
    int pick = -1;
    float pick_p = 0.f;                                     // its p (softmax_first) or its logit
    unsigned int taken = 0u;
#pragma unroll 1
    for (int r = 0; r < k; r++) {
        float v = NEG_INF, pv = 0.f;
        int e = -1;
#pragma unroll
        for (int it = 0; it < PER_LANE; it++) {
            const int expert = it * width + lane;
            if (lane < width && expert < experts && !(taken & (1u << it)))
                route_better(v, e, pv, value[it], expert, softmax_first ? p[it] : value[it]);
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, v, o), op = __shfl_xor_sync(0xffffffffu, pv, o);
            const int oe = __shfl_xor_sync(0xffffffffu, e, o);
            route_better(v, e, pv, ov, oe, op);
        }
        if (lane < width && e % width == lane) taken |= 1u << (e / width);
        if (lane == r) {
            pick = e;
            pick_p = pv;
        }
    }

    long long* out_chosen = chosen + (long)token * k;
    elem_t* out_weights = weights + (long)token * k;
    if (softmax_first) {
        float sum = 0.f;                                    // in the order chosen
        if (normalize) {
#pragma unroll 1
            for (int r = 0; r < k; r++) sum += __shfl_sync(0xffffffffu, pick_p, r);
        }
        if (lane < k) {
            out_chosen[lane] = pick;
            out_weights[lane] = from_f(normalize ? pick_p / sum : pick_p);
        }
        return;
    }
    // the softmax of the top k logits (largest first: pick 0's is their max), summed as a butterfly over pow2(k) lanes
    // (the lanes past k2 sum zeros among themselves)
    int k2 = 1;
    while (k2 < k) k2 <<= 1;
    const float top = __shfl_sync(0xffffffffu, pick_p, 0);
    const float exp_p = lane < k ? expf(pick_p - top) : 0.f;
    float sums = exp_p;
    for (int o = k2 / 2; o > 0; o >>= 1) sums += __shfl_xor_sync(0xffffffffu, sums, o);
    const float total = __shfl_sync(0xffffffffu, sums, 0);
    if (lane < k) {
        out_chosen[lane] = pick;
        out_weights[lane] = from_f(exp_p / total);
    }
}

#define EXPERT_CHOICE(PER_LANE)                                                                                          \
    extern "C" __global__ void expert_choice_##PER_LANE(const void* __restrict__ logits, int logits_f32,                 \
            const float* __restrict__ choice_bias, long long* __restrict__ chosen, elem_t* __restrict__ weights,          \
            int tokens, int experts, int k, int softmax_first, int normalize) {                                          \
        wait_for_previous_kernel();                                                                                      \
        const int token = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);                                     \
        if (token < tokens)                                 /* the whole warp */                                         \
            choose_experts<PER_LANE>(token, logits, logits_f32, choice_bias, chosen, weights, experts, k, softmax_first, \
                                     normalize);                                                                         \
    }
EXPERT_CHOICE(1)
EXPERT_CHOICE(2)
EXPERT_CHOICE(4)
EXPERT_CHOICE(8)
EXPERT_CHOICE(16)
EXPERT_CHOICE(32)

// ---------------------------------------------------------------------------------------------------
// A step's slots (token t's pick j at t x k + j) grouped by expert as ExpertGroups lays them out, in one block:
// each token's picks put in expert order (and its weights with them), then every slot's row among the grouped ones:
// its expert's start plus the tokens before it that chose that expert (tokens in order within an expert).
//   chosen (tokens, k) int64 (a token's experts distinct), weights (tokens, k) elem_t
//   -> weights_sorted (tokens, k); row_of_slot (tokens x k), tokens_of_row (slots), expert_of_row (slots) int64;
//      starts (experts + 1) int64, expert e's rows starts[e] .. starts[e + 1]; active (experts) int64, the experts
//      with rows in order, then the others in order
//   dynamic shared memory: (tokens x k + experts + 1) ints; experts <= 1024, k <= 32; one block of a multiple of 32 threads
// chosen and weights are not __restrict__ here: expert_route reads them back in the block that wrote them (the
// read-only cache would not see those writes).
// ---------------------------------------------------------------------------------------------------
__device__ __forceinline__ void group_experts(const long long* chosen, const elem_t* weights,
                                              elem_t* __restrict__ weights_sorted, long long* __restrict__ row_of_slot,
                                              long long* __restrict__ tokens_of_row, long long* __restrict__ expert_of_row,
                                              long long* __restrict__ starts, long long* __restrict__ active, int tokens, int k, int experts) {
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
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const unsigned int below = (1u << lane) - 1u;   // the lanes before this one
    if (warp == 0) {
        // the counts' exclusive sums and the experts with rows, 32 experts at a time
        int start = 0, placed = 0;
#pragma unroll 1
        for (int e0 = 0; e0 < experts; e0 += 32) {
            const int e = e0 + lane;
            const int count = e < experts ? first[e] : 0;
            int sum = count;
            for (int o = 1; o < 32; o <<= 1) {
                const int before = __shfl_up_sync(0xffffffffu, sum, o);
                if (lane >= o) sum += before;
            }
            if (e < experts) first[e] = starts[e] = start + sum - count;
            start += __shfl_sync(0xffffffffu, sum, 31);
            const unsigned int held = __ballot_sync(0xffffffffu, count > 0);
            if (count > 0) active[placed + __popc(held & below)] = e;
            placed += __popc(held);
        }
        if (lane == 0) first[experts] = starts[experts] = start;
        __syncwarp();
        // then the experts without rows
#pragma unroll 1
        for (int e0 = 0; e0 < experts; e0 += 32) {
            const int e = e0 + lane;
            const bool none = e < experts && first[e + 1] == first[e];
            const unsigned int empty = __ballot_sync(0xffffffffu, none);
            if (none) active[placed + __popc(empty & below)] = e;
            placed += __popc(empty);
        }
    }
    __syncthreads();
    // warp w places the slots of experts w, w + warps, ...: 32 tokens at a time, in token order
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

extern "C" __global__ void expert_groups(const long long* __restrict__ chosen, const elem_t* __restrict__ weights,
                                         elem_t* __restrict__ weights_sorted, long long* __restrict__ row_of_slot,
                                         long long* __restrict__ tokens_of_row, long long* __restrict__ expert_of_row,
                                         long long* __restrict__ starts, long long* __restrict__ active, int tokens, int k, int experts) {
    wait_for_previous_kernel();
    group_experts(chosen, weights, weights_sorted, row_of_slot, tokens_of_row, expert_of_row, starts, active, tokens, k, experts);
}

// ---------------------------------------------------------------------------------------------------
// expert_choice_N then expert_groups in one block, for a step of at most as many tokens as the block has warps (a
// decode step of up to 8 sequences: one launch a MoE layer where two): warp t chooses token t's experts into chosen
// and weights (the same values expert_choice writes), then the block groups them (expert_groups' outputs, the same).
// Arguments: expert_choice's, then expert_groups' outputs; dynamic shared memory as expert_groups'.
// ---------------------------------------------------------------------------------------------------
#define EXPERT_ROUTE(PER_LANE)                                                                                           \
    extern "C" __global__ void expert_route_##PER_LANE(const void* __restrict__ logits, int logits_f32,                  \
            const float* __restrict__ choice_bias, long long* chosen, elem_t* weights, int tokens, int experts, int k,    \
            int softmax_first, int normalize, elem_t* __restrict__ weights_sorted, long long* __restrict__ row_of_slot,   \
            long long* __restrict__ tokens_of_row, long long* __restrict__ expert_of_row, long long* __restrict__ starts, \
            long long* __restrict__ active) {                                                                            \
        wait_for_previous_kernel();                                                                                      \
        const int token = threadIdx.x >> 5;                                                                              \
        if (token < tokens)                                                                                              \
            choose_experts<PER_LANE>(token, logits, logits_f32, choice_bias, chosen, weights, experts, k, softmax_first, \
                                     normalize);                                                                         \
        __syncthreads();                                                                                                 \
        group_experts(chosen, weights, weights_sorted, row_of_slot, tokens_of_row, expert_of_row, starts, active,        \
                      tokens, k, experts);                                                                               \
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
