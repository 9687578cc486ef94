// Attention of query rows against the engine's cached keys/values (runtime/engine.cpp).
//
// Cache layout of one (block, layer, kv head) page of kBlockTokens tokens:
//   K transposed: element (token t, dim e) at e * kBlockTokens + t, so the scores of a block's
//                 16 keys are one vector FMA chain over the head dimension (no lane reduction);
//   V row-major:  element (t, e) at t * hd + e, so p.v accumulates whole rows.
// Rows gathered into a contiguous fp32 buffer for BLAS (table == null) are row-major, K and V.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "runtime/kv_pool.h"

namespace awq {

template <typename T>  // float, or uint16_t (fp16 bits)
struct KvRowsT {
  const T *k, *v;       // page of block 0 (paged) or row 0 (gathered)
  const int* table;     // the slot's block table, or null (gathered, row-major)
  size_t block_stride;  // elements between consecutive pool blocks
  int hd;
  size_t page(int j) const { return (size_t)table[j / kBlockTokens] * block_stride; }
  // Offset of V row j.
  size_t v_off(int j) const {
    return table ? page(j) + (size_t)(j % kBlockTokens) * hd : (size_t)j * hd;
  }
  // Offset of K element (j, e).
  size_t k_off(int j, int e) const {
    return table ? page(j) + (size_t)e * kBlockTokens + j % kBlockTokens : (size_t)j * hd + e;
  }
};

// Store token t's K row (hd floats) into its page (transposed) as T.
template <typename T>
void kv_put_k(T* page, int t, const float* src, int hd);
// Store token t's V row into its page.
template <typename T>
void kv_put_v(T* page, int t, const float* src, int hd);
// Copy tokens [0, n) of a page into row-major fp32 rows (dst_k/dst_v: n x hd).
template <typename T>
void kv_gather(float* dst_k, float* dst_v, const T* k_page, const T* v_page, int n, int hd);

// Attention of `rows` queries of G query heads that share one kv head (grouped-query
// attention: the heads' q vectors are consecutive, hd apart, in each row) against that kv head's
// cached keys/values. q rows have stride q_stride; query i sits at position p0 + i and sees keys
// [0, p0 + i]. gemm (BLAS over all rows at once, head by head) needs gathered rows (kv.table
// null, T = float); otherwise rows go one at a time and each output row depends only on its
// query and the keys it sees, whatever G and the rows around it (the batch-invariant path). out
// rows have stride q_stride, laid out as q. window > 0: query i sees only keys
// (p0 + i - window, p0 + i] (sliding-window layers).
template <typename T>
void cached_attention_group(const ModelConfig& cfg, int window, const float* q, int q_stride,
                            int G, int rows, int p0, const KvRowsT<T>& kv, float scale, float* out,
                            std::vector<float>& scores, bool gemm);

}  // namespace awq
