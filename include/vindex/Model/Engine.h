//===- Engine.h - The CPU forward pass over a V-index -----------*- C++ -*-===//
//
// The engine is the oracle of every later pass: probing, inserting,
// balancing and verifying all run the model. It reads weights in place from
// the V-index (f32 and bf16 are used as stored; compressed tensors are
// decoded once at load, and f16 ones widened to f32, except the embedding
// and the LM head, read as stored), computes in f32, and exposes the
// residual stream and the FFN activations of every layer.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_MODEL_ENGINE_H
#define VINDEX_MODEL_ENGINE_H

#include "vindex/Formats/ModelConfig.h"
#include "vindex/Model/Kernels.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace vindex {

class TensorView;
class Vindex;
class WorkerTeam;

struct LayerWeights {
  WeightMatrix Q, K, V, O;
  std::vector<float> QBias, KBias, VBias;
  /// Norm weights as applied (Gemma's 1 + w folded in), f32.
  std::vector<float> InputNorm, PostAttnNorm, PreFFNNorm, PostFFNNorm;
  std::vector<float> QNorm, KNorm;
  /// Feature-major FFN: [F, d] each.
  WeightMatrix Gate, Up, Down;
  bool Sliding = false;
  std::vector<float> RopeInvFreq; ///< head_dim / 2 inverse frequencies.

  /// |up_i| * |down_i| per feature: the walk's ranking scale (computed on
  /// first use, thread-safe).
  llvm::ArrayRef<float> walkScale() const;

private:
  mutable std::vector<float> WalkScale;
  std::unique_ptr<std::once_flag> WalkScaleOnce =
      std::make_unique<std::once_flag>();
};

/// A matrix as the engine binds it, with the copies it owns (decoded,
/// widened, transposed), shared so that a reload keeps those of unchanged
/// tensors.
struct BoundMatrix {
  WeightMatrix W;
  std::shared_ptr<std::vector<std::vector<uint8_t>>> Owned;
};
/// By tensor name.
using BoundMatrices = llvm::StringMap<BoundMatrix>;

struct LoadOptions {
  /// Widen bf16 weights to f32 (and keep transposed copies for the GEMM
  /// kernel) when all the weights fit in this many bytes as f32; larger
  /// models run from the mapped bytes. 0 never widens. The embedding and
  /// the LM head are never widened (their rows are read in place, the
  /// logits computed with the chains a transposed copy would give), so
  /// results do not depend on this budget through them.
  uint64_t WidenBudget = uint64_t(1) << 30;
};

class Model {
public:
  /// Binds the weights of V (which must outlive the model), with its
  /// persisted patches.
  static llvm::Expected<std::unique_ptr<Model>>
  load(const Vindex &V, const LoadOptions &Opts = {});
  /// Binds the weights the view shows (it must outlive the model); each
  /// layer's FFN has the view's width for it.
  static llvm::Expected<std::unique_ptr<Model>>
  load(const TensorView &V, const LoadOptions &Opts = {});
  ~Model();

  /// True when the view changed since the weights were bound.
  bool stale() const;
  /// Rebinds the weights, and drops every cache derived from them (widened
  /// and transposed copies, walk scales), if the view changed. Sessions
  /// keep their KV caches: reset them.
  llvm::Error reload();

  const ModelConfig &config() const { return Config; }
  const WeightMatrix &embedding() const { return Embedding; }
  const WeightMatrix &lmHead() const { return LMHead; }
  /// Y[t][n] = logit n (before any soft-cap) of the final-normed X[t], for
  /// n in [N0, N1): always the chains of matmulNT over a transposed f32
  /// copy. The first calls, and every call on a model over the widen
  /// budget, read the stored rows (matmulNTRowPanels), so that a one-shot
  /// statement does not pay for the copy; a model that fits the budget
  /// makes the copy at its fourth call (thread-safe; a repeated user such
  /// as the probe gets the GEMM over it). Either way the same bits.
  void lmHeadLogits(const float *X, size_t T, size_t N0, size_t N1, float *Y,
                    size_t YStride) const;
  llvm::ArrayRef<float> finalNorm() const { return FinalNorm; }
  const LayerWeights &layer(size_t L) const { return Layers[L]; }
  size_t numLayers() const { return Layers.size(); }
  /// The widest layer's FFN (the config's intermediate_size unless patches
  /// appended slots).
  size_t maxFFNWidth() const;
  /// The view the weights come from.
  const TensorView &view() const { return *View; }

private:
  Model();
  llvm::Error bind(const BoundMatrices *Reuse = nullptr, uint64_t Since = 0);
  const TensorView *View = nullptr;
  std::unique_ptr<TensorView> OwnedView; ///< load(const Vindex &)
  uint64_t Generation = 0;
  LoadOptions Opts;
  ModelConfig Config;
  WeightMatrix Embedding, LMHead;
  /// The LM head's transposed f32 copy, made on demand (lmHeadLogits).
  bool TransposeLMHead = false;
  mutable std::vector<float> LMHeadTransposed;
  mutable std::atomic<unsigned> LMHeadCalls{0};
  std::unique_ptr<std::once_flag> LMHeadOnce =
      std::make_unique<std::once_flag>();
  std::vector<float> FinalNorm;
  std::vector<LayerWeights> Layers;
  /// The matrices and the copies of them that cannot be used in place.
  BoundMatrices Bound;
};

/// What a forward pass should record or change, per layer.
struct ForwardOptions {
  /// 0: the dense FFN. K > 0: the walk FFN, firing only the K features with
  /// the largest gate scores at each position (exact KNN over the gates).
  size_t WalkK = 0;
  /// Record the residual stream: Residuals[0] is the input of layer 0
  /// (after the embedding scale), Residuals[L + 1] the output of layer L;
  /// each [T, hidden] for the positions of this call.
  bool CaptureResiduals = false;
  /// Record the FFN activations act(gate) * up per layer, [T, F].
  bool CaptureFFN = false;
  /// With CaptureFFN, record this layer's alone (the others' stay empty):
  /// a probe of one layer's keys copied every layer's, tens of megabytes a
  /// batch on a widened model.
  std::optional<size_t> CaptureFFNLayer;
  /// Called after layer L with that layer's output [T, hidden] for the
  /// positions of this call; it may read or add to it (the hook editing
  /// uses). Positions are absolute: the first row is position Start.
  std::function<void(size_t Layer, size_t Start, size_t T,
                     llvm::MutableArrayRef<float> Residual)>
      AfterLayer;
  /// Called after layer L's FFN, before its post-FFN norm (Gemma) and the
  /// residual add, with the FFN's input (after the pre-FFN norm) and its
  /// output, each [T, hidden]: it may add to the output. Editing uses it to
  /// capture keys (the input gate and up multiply) and to try features
  /// before they are installed.
  std::function<void(size_t Layer, size_t Start, size_t T,
                     llvm::ArrayRef<float> Input,
                     llvm::MutableArrayRef<float> Output)>
      AfterFFN;
  /// Compute logits at every position rather than the last only.
  bool AllLogits = false;
  /// Run only the first StopAfter layers and return no logits (what
  /// probing needs: a residual mid-model, not the LM head); unset runs all.
  /// Later layers' KV caches are then missing, so the session is reset.
  std::optional<size_t> StopAfter;
  /// Start at layer StartLayer from StartResidual ([T, hidden]: the input
  /// of that layer at the positions of this call, Residuals[StartLayer] of
  /// an earlier run of the same tokens on weights that differ from these
  /// only from that layer on): the layers below are not run, and their
  /// captured residuals and activations are empty. Their KV caches are not
  /// filled either, so the session is reset.
  size_t StartLayer = 0;
  llvm::ArrayRef<float> StartResidual;
  /// With StartKeys ([T, F]: FFNActivations[StartLayer] of the earlier
  /// run), the run starts at layer StartLayer's down projection instead,
  /// StartResidual being that layer's residual after its attention
  /// (AttentionResiduals[StartLayer]; Residuals[StartLayer] is then that
  /// residual); the earlier run's weights must differ from these only in
  /// that layer's down projection and above.
  /// Each later layer of MODE memit's round resumes so after the update of
  /// the one below, whose attention and gate and up it does not run again.
  llvm::ArrayRef<float> StartKeys;
  /// Record layer L's residual after its attention (before the FFN),
  /// AttentionResiduals[L], for this layer alone.
  std::optional<size_t> CaptureAttentionResidual;
  /// The rows of this call (ascending) whose output the last layer run
  /// must give; empty: every row. The others need that layer's keys and
  /// values (which the attention computes for every row) but not its FFN,
  /// which is skipped for them: their rows of its FFN output, activations
  /// and output residual hold only what the attention added. A probe that
  /// reads a few positions of each text saves most of its top layer.
  llvm::ArrayRef<size_t> OutputRows;
};

/// Runs Work(Batch, Threads) for Batch = 0 ... Count - 1, independent
/// batched forwards whose results Work keeps apart (each batch its own).
/// Where a layer's matrices are too small for threads to share one
/// product (the tiny fixtures: a thread's share of a 96-row projection is
/// gone before the other wakes), the batches run side by side on Threads
/// threads, each given 1; otherwise one after another, each given Threads.
/// The bits do not depend on which: a forward's results do not depend on
/// its threads.
void forEachBatch(
    const Model &M, size_t Count, unsigned Threads,
    llvm::function_ref<void(size_t Batch, unsigned Threads)> Work);

struct ForwardResult {
  /// [vocab] at the last position, or [T, vocab] with AllLogits.
  std::vector<float> Logits;
  std::vector<std::vector<float>> Residuals;
  std::vector<std::vector<float>> FFNActivations;
  /// With CaptureAttentionResidual = L: [L] is layer L's residual after
  /// its attention, [T, hidden]; the entries below it are empty.
  std::vector<std::vector<float>> AttentionResiduals;
  /// The last position after the final norm.
  std::vector<float> FinalNormLast;
};

/// A sequence being run: the KV cache and scratch space. Feeding tokens in
/// several calls equals feeding them at once, bit for bit, on widened and
/// on mapped bf16 weights (every token count runs each output's chain over
/// k in order from zero).
class Session {
public:
  /// Threads: 0 = one per core.
  Session(const Model &M, unsigned Threads = 1);
  ~Session();

  /// Runs Tokens at positions position() ... and returns the result (empty
  /// for no tokens). Ids must be below the vocabulary size (an id outside it
  /// reads the embedding row 0).
  ForwardResult run(llvm::ArrayRef<int32_t> Tokens,
                    const ForwardOptions &Opts = {});
  size_t position() const { return Pos; }
  void reset() { Pos = 0; }

  /// One token for each of several sessions of the same model, run as one
  /// batch (each row at its own session's position, attending to its own
  /// cache; the weights are read once for all): the same results as
  /// Sessions[I]->run({Tokens[I]}, Opts) for each I, and the logits of
  /// every row ([Sessions.size(), vocab]). The sessions must be distinct;
  /// the hooks see one row per session, in order (Start is the first
  /// session's position). Threads: the first session's.
  static ForwardResult step(llvm::ArrayRef<Session *> Sessions,
                            llvm::ArrayRef<int32_t> Tokens,
                            const ForwardOptions &Opts = {});

  /// Greedy decoding: feeds Prompt, then up to MaxNew argmax tokens, stopping
  /// after an id in Stop. Returns the generated ids.
  std::vector<int32_t> generate(llvm::ArrayRef<int32_t> Prompt, size_t MaxNew,
                                llvm::ArrayRef<int64_t> Stop,
                                const ForwardOptions &Opts = {});

  /// Several tokens for each of several sessions, run as one batch: the
  /// rows are Tokens[0] of Sessions[0], then Tokens[1] of Sessions[1], ...,
  /// each session's from its own position (the weights read once for all,
  /// each row's results those of Sessions[I]->run(Tokens[I], Opts)). The
  /// captured tensors hold every row, in that order; the logits are the last
  /// row's (every row's with Opts.AllLogits). Threads: the first session's.
  static ForwardResult runMany(llvm::ArrayRef<Session *> Sessions,
                               llvm::ArrayRef<llvm::ArrayRef<int32_t>> Tokens,
                               const ForwardOptions &Opts = {});

  /// Each of Texts from position 0 in a fresh session of its own, run as
  /// one batch (runMany; the first session carries Threads).
  static ForwardResult runTexts(const Model &M,
                                llvm::ArrayRef<llvm::ArrayRef<int32_t>> Texts,
                                const ForwardOptions &Opts = {},
                                unsigned Threads = 1);

  /// Greedy decoding of many prompts together: one token of each sequence
  /// per batched forward (as step(): the weights read once for all), Batch
  /// sequences at a time, on Threads threads. Result I is what
  /// generate(Prompts[I], MaxNew, Stop) gives.
  static std::vector<std::vector<int32_t>>
  generateMany(const Model &M, llvm::ArrayRef<std::vector<int32_t>> Prompts,
               size_t MaxNew, llvm::ArrayRef<int64_t> Stop,
               unsigned Threads = 1, size_t Batch = 128);
  /// The same with a limit per prompt (MaxNew[I] tokens for Prompts[I]): a
  /// sequence that is done leaves the batch.
  static std::vector<std::vector<int32_t>>
  generateMany(const Model &M, llvm::ArrayRef<std::vector<int32_t>> Prompts,
               llvm::ArrayRef<size_t> MaxNew, llvm::ArrayRef<int64_t> Stop,
               unsigned Threads = 1, size_t Batch = 128);

private:
  void parallelFor(size_t N, size_t Grain,
                   const std::function<void(size_t, size_t)> &Body);
  /// The forward pass over rows: row I is token Tokens[I] of session
  /// Rows[I] at position Positions[I] (a session's rows consecutive, in
  /// order); logits for every row when EveryRow.
  ForwardResult forward(llvm::ArrayRef<Session *> Rows,
                        llvm::ArrayRef<size_t> Positions,
                        llvm::ArrayRef<int32_t> Tokens,
                        const ForwardOptions &Opts, bool EveryRow);
  void attention(const LayerWeights &W, size_t Layer, const float *X, size_t T,
                 float *Out, llvm::ArrayRef<Session *> Rows,
                 llvm::ArrayRef<size_t> Positions);
  void ffn(const LayerWeights &W, const float *X, size_t T, size_t WalkK,
           float *Out, std::vector<float> *Activations);
  /// The dense FFN's down projection of the activations G ([T, F]) into
  /// Out ([T, hidden]).
  void downProject(const LayerWeights &W, const float *G, size_t T, float *Out);
  /// ffn for the rows Rows of X alone; the others' output and activations
  /// are zero.
  void ffnRows(const LayerWeights &W, const float *X, size_t T,
               llvm::ArrayRef<size_t> Rows, size_t WalkK, float *Out,
               std::vector<float> *Activations);
  void project(const float *X, size_t T, const WeightMatrix &W, float *Y);

  const Model &M;
  unsigned Threads;
  std::unique_ptr<WorkerTeam> Team;
  size_t Pos = 0;
  /// Per layer: keys and values [MaxPos, kv_heads * head_dim], grown on
  /// demand.
  std::vector<std::vector<float>> KCache, VCache;
  /// The forward pass's working buffers, grown on demand and kept between
  /// calls: allocated per layer and call, they were pages faulted in anew
  /// each time (a quarter of a 512-token prompt's time on tiny-gemma3).
  struct Workspace {
    std::vector<float> X, H, A, Q, K, V, Attn, Gate, Up;
  } Work;
};

/// Index of the largest element (the first one on ties).
size_t argmax(llvm::ArrayRef<float> V);

} // namespace vindex

#endif // VINDEX_MODEL_ENGINE_H
