// fp32 forward pass of a Llama-family decoder on the CPU.
// Activations are row-major [n_tokens][width]; a batch is n_seq independent causal
// sequences of equal length T laid out one after another (n_tokens = n_seq * T).
#pragma once
#include <initializer_list>
#include <utility>
#include <cstdint>
#include <vector>

#include "model/weights.h"

namespace awq {

// MoE calibration record of one block: per expert, the tokens routed to it (row indices into
// the block's token rows, ascending), their routing weights, and the input of its down_proj.
struct MoeRecord {
  std::vector<std::vector<int32_t>> rows;      // [expert][n_e]
  std::vector<std::vector<float>> weight;      // [expert][n_e]
  std::vector<std::vector<float>> down_in;     // [expert][n_e][moe_intermediate]
  std::vector<float> shared_down_in;           // [n_tok][shared_intermediate] (shared expert)
};

// Inputs of every linear layer of one block, recorded for the AWQ search.
struct BlockRecord {
  std::vector<float> attn_in;   // [n_tok][hidden]  normed input of q/k/v
  std::vector<float> o_in;      // [n_tok][n_heads*head_dim] input of o_proj
  std::vector<float> mlp_in;    // [n_tok][hidden]  normed input of gate/up
  std::vector<float> down_in;   // [n_tok][intermediate] input of down_proj (dense MLP)
  MoeRecord moe;                // MoE blocks: per-expert routing and down_proj inputs
};

// y[M][out] = x[M][in] · W^T + b  (fp32 sgemm, or the W4 kernels when the layer holds them)
void linear_forward(const Linear& l, const float* x, int64_t M, float* y);
// Several layers that read the same x (q/k/v, gate/up): y_i = linear_forward(*ls[i], x, M), each
// bit-identical to its own call; W4 layers share one preparation of x (kernels/w4.h,
// w4_matmul_multi).
void linear_forward_multi(std::initializer_list<std::pair<const Linear*, float*>> ls, const float* x,
                          int64_t M);

void rms_norm(const float* x, const float* w, int64_t n_tok, int dim, float eps, float* y);

// Rotary tables for positions [0, n_pos): cos/sin [n_pos][rot_dim/2] (HF rotate_half layout over
// the first rot_dim dims of each head; partial rotary leaves dims rot_dim.. unchanged).
// Models with a second RoPE base for their sliding-window layers (Gemma 3) also get the local
// tables; apply(..., local = cfg.local_rope(layer)) picks them.
struct Rope {
  int head_dim = 0;  // stride of a head in the rows
  int rot_dim = 0;   // dims rotated per head (cfg.rope_dims()); the rest pass through
  std::vector<float> cos, sin;
  std::vector<float> cos_local, sin_local;
  void build(const ModelConfig& cfg, int n_pos);
  void apply(float* x, int64_t n_tok_rows, int n_heads, const int* positions,
             bool local = false) const;
};

// ---- per-layer recipe pieces shared by the forward and the KV engine ----
// Score scale of attention: cfg.attn_scale, or 1/sqrt(head_dim).
float attention_scale(const ModelConfig& cfg);
// One row of scaled scores for keys [0, S) of a query at position q_pos (S > q_pos): soft-caps
// the visible keys (cfg.attn_softcap), then softmax over the keys the query sees — [0, q_pos],
// or (q_pos - window, q_pos] when window > 0 — and zero elsewhere.
void attention_softmax(const ModelConfig& cfg, int window, float* row, int q_pos, int S);
// Per-head RMSNorm of q [n_rows][n_heads*hd] and k [n_rows][n_kv*hd] when the block has q/k norms.
void qk_norm(const ModelConfig& cfg, const BlockWeights& b, float* q, float* k, int64_t n_rows);
// x += post_norm(y) (Gemma 2/3 post-norms), or x += y when post_norm is empty; y is overwritten.
void add_residual(const ModelConfig& cfg, const std::vector<float>& post_norm, float* x, float* y,
                  int64_t n_rows);

// Self-attention module: xn [n_seq*T][hidden] (already normed) -> out [n_seq*T][hidden].
// If o_in is non-null it receives the input of o_proj [n_seq*T][n_heads*head_dim].
void attention_forward(const ModelConfig& cfg, const BlockWeights& b, const Rope& rope,
                       const float* xn, int n_seq, int T, float* out, float* o_in = nullptr);
// MLP module: xn [n_tok][hidden] -> out [n_tok][hidden]; down_in receives [n_tok][intermediate].
// A MoE block (b.experts non-empty) runs moe_forward (down_in unused).
void mlp_forward(const ModelConfig& cfg, const BlockWeights& b, const float* xn, int64_t n_tok,
                 float* out, float* down_in = nullptr);
// Top-k routing of n_tok rows as Transformers does it: logits = xn · router^T, softmax in fp32,
// the k largest probabilities (ties: lower expert first), divided by their sum when
// cfg.norm_topk_prob. experts/weights [n_tok][top_k].
void moe_route(const ModelConfig& cfg, const Linear& router, const float* xn, int64_t n_tok,
               std::vector<int32_t>& experts, std::vector<float>& weights);
// MoE MLP: xn [n_tok][hidden] -> out [n_tok][hidden]; each expert runs on the rows routed to it
// (gathered), its output weighted and summed in expert order. rec (optional) receives the
// per-expert routing and down_proj inputs.
void moe_forward(const ModelConfig& cfg, const BlockWeights& b, const float* xn, int64_t n_tok,
                 float* out, MoeRecord* rec = nullptr);

// One decoder block in place on x [n_seq*T][hidden]; records linear inputs when rec != null.
void block_forward(const ModelConfig& cfg, const BlockWeights& b, const Rope& rope, float* x,
                   int n_seq, int T, BlockRecord* rec = nullptr);

void embed_tokens(const Model& m, const int32_t* tokens, int64_t n_tok, float* x);
// Final hidden states (after the final norm) for n_seq sequences of length T.
void forward_hidden(const Model& m, const int32_t* tokens, int n_seq, int T, float* hidden_out);
// logits[n_tok][vocab] = hidden · lm_head^T, exact: the fp16 head (<= 16 rows) or fp32 sgemm.
// Evaluation (perplexity, KL) uses this one.
void lm_head_forward(const Model& m, const float* hidden, int64_t n_tok, float* logits);
// Same for generation (the engine): the 8-bit head m.lm_head_q8 when the model has one and
// n_tok <= 16 (int8 activations, kernels/q8_matmul.h), else lm_head_forward.
void lm_head_decode(const Model& m, const float* hidden, int64_t n_tok, float* logits);

}  // namespace awq
