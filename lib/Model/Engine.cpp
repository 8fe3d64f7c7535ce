//===- Engine.cpp - The CPU forward pass ----------------------------------===//
//
// Follows transformers' modeling_gemma3.py and modeling_llama.py (eager
// attention) in f32: RMSNorm with Gemma's (1 + w), QK-norm before RoPE,
// rotate-half RoPE with per-layer bases, GQA, causal and sliding-window
// masks (q - window < k <= q), post-norms before the residual adds, GeGLU /
// SwiGLU, tied or separate LM head.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Engine.h"
#include "WorkerTeam.h"

#include "vindex/Formats/Architecture.h"
#include "vindex/Formats/Rope.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/Transpose.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

using namespace llvm;

namespace vindex {

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

namespace {

class Binder {
public:
  Binder(const TensorView &V, BoundMatrices &Bound) : V(V), Bound(Bound) {}

  /// Matrices bound at generation Since that are reused when no later patch
  /// changed them (a reload rebuilds only the caches of what changed).
  const BoundMatrices *Reuse = nullptr;
  uint64_t Since = 0;

  const TensorRecord *find(TensorRole Role, int Layer) {
    return V.find(Role, Layer);
  }

  /// Convert bf16 matrices to f32 copies (small models: twice the memory,
  /// but no conversion in the inner loops).
  bool WidenBF16 = false;

  /// The tensor's bytes in a dtype the kernels take (f32 or bf16). InPlace
  /// keeps the tensor as stored (f16 too) whatever WidenBF16 says, with no
  /// transposed copy: the vocabulary-sized matrices, whose rows the
  /// embedding reads on demand and whose logits matmulNTRowPanels computes
  /// with the chains of a transposed copy (so that results do not depend on
  /// the model's size), and whose copies would cost a small model more
  /// than a statement (262,144 rows of Gemma 3).
  Expected<WeightMatrix> matrix(TensorRole Role, int Layer, size_t Rows,
                                size_t Cols, bool InPlace = false) {
    const TensorRecord *T = find(Role, Layer);
    if (!T)
      return missing(Role, Layer);
    Shape Dims = V.record(*T).Dims; // with appended rows
    if (numElements(Dims).value_or(0) != Rows * Cols)
      return makeError("{0}: tensor '{1}' has shape {2}, expected [{3}, {4}]",
                       directory(), T->Name, shapeString(Dims), Rows, Cols);
    if (Reuse && !V.changedSince(*T, Since))
      if (auto It = Reuse->find(T->Name); It != Reuse->end()) {
        Bound[T->Name] = It->second;
        return It->second.W;
      }
    BoundMatrix &B = Bound[T->Name];
    B.Owned = std::make_shared<std::vector<std::vector<uint8_t>>>();
    std::vector<std::vector<uint8_t>> &Owned = *B.Owned;
    std::vector<uint8_t> Storage;
    Expected<ArrayRef<uint8_t>> Bytes = V.data(*T, Storage);
    if (!Bytes)
      return Bytes.takeError();
    if (!Storage.empty()) {
      Owned.push_back(std::move(Storage));
      Bytes = ArrayRef<uint8_t>(Owned.back());
    }
    WeightMatrix W;
    W.Rows = Rows;
    W.Cols = Cols;
    bool Widen = WidenBF16 && !InPlace;
    if ((T->Type == DType::F16 && !InPlace) ||
        (T->Type == DType::BF16 && Widen)) {
      std::vector<float> F = toFloats(*T, *Bytes);
      Owned.emplace_back(reinterpret_cast<uint8_t *>(F.data()),
                         reinterpret_cast<uint8_t *>(F.data() + F.size()));
      W.Data = Owned.back().data();
      W.Type = DType::F32;
    } else {
      W.Data = Bytes->data();
      W.Type = T->Type;
    }
    if (Widen && W.Type == DType::F32) {
      // Small models also keep the transpose, for the GEMM kernel.
      std::vector<uint8_t> Tr(Rows * Cols * 4);
      transposeMatrix(static_cast<const uint8_t *>(W.Data), Rows, Cols, 4,
                      Tr.data());
      Owned.push_back(std::move(Tr));
      W.Transposed = reinterpret_cast<const float *>(Owned.back().data());
    }
    B.W = W;
    return W;
  }

  /// A vector as f32, plus Add (Gemma norms store w for a scale of 1 + w).
  Expected<std::vector<float>> vector(TensorRole Role, int Layer, size_t N,
                                      float Add = 0.0f) {
    const TensorRecord *T = find(Role, Layer);
    if (!T)
      return missing(Role, Layer);
    Shape Dims = V.record(*T).Dims;
    if (numElements(Dims).value_or(0) != N)
      return makeError("{0}: tensor '{1}' has shape {2}, expected [{3}]",
                       directory(), T->Name, shapeString(Dims), N);
    std::vector<uint8_t> Storage;
    Expected<ArrayRef<uint8_t>> Bytes = V.data(*T, Storage);
    if (!Bytes)
      return Bytes.takeError();
    std::vector<float> F = toFloats(*T, *Bytes);
    for (float &X : F)
      X += Add;
    return F;
  }

private:
  StringRef directory() const { return V.base().directory(); }
  Error missing(TensorRole Role, int Layer) {
    if (Layer < 0)
      return makeError("{0}: the model has no {1} tensor", directory(),
                       roleName(Role));
    return makeError("{0}: layer {1} has no {2} tensor", directory(), Layer,
                     roleName(Role));
  }

  static std::vector<float> toFloats(const TensorRecord &T,
                                     ArrayRef<uint8_t> B) {
    size_t N = B.size() / dtypeSize(T.Type);
    std::vector<float> F(N);
    for (size_t I = 0; I < N; ++I) {
      if (T.Type == DType::F32) {
        std::memcpy(&F[I], B.data() + 4 * I, 4);
      } else {
        uint16_t H;
        std::memcpy(&H, B.data() + 2 * I, 2);
        F[I] = T.Type == DType::BF16 ? bf16ToFloat(H) : f16ToFloat(H);
      }
    }
    return F;
  }

  const TensorView &V;
  BoundMatrices &Bound;
};

} // namespace

Model::Model() = default;
Model::~Model() = default;

Expected<std::unique_ptr<Model>> Model::load(const Vindex &V,
                                             const LoadOptions &Opts) {
  std::unique_ptr<Model> M(new Model());
  M->OwnedView = std::make_unique<TensorView>(V);
  M->View = M->OwnedView.get();
  M->Opts = Opts;
  if (Error E = M->bind())
    return std::move(E);
  return std::move(M);
}

Expected<std::unique_ptr<Model>> Model::load(const TensorView &V,
                                             const LoadOptions &Opts) {
  std::unique_ptr<Model> M(new Model());
  M->View = &V;
  M->Opts = Opts;
  if (Error E = M->bind())
    return std::move(E);
  return std::move(M);
}

bool Model::stale() const { return Generation != View->generation(); }

Error Model::reload() {
  if (!stale())
    return Error::success();
  // Bound afresh, so that a failure leaves the model as it was. The
  // matrices no new patch changed keep their widened and transposed copies
  // (shared); the others, and every walk scale, are rebuilt.
  Model Fresh;
  Fresh.View = View;
  Fresh.Opts = Opts;
  if (Error E = Fresh.bind(&Bound, Generation))
    return E;
  Generation = Fresh.Generation;
  Config = std::move(Fresh.Config);
  Embedding = Fresh.Embedding;
  LMHead = Fresh.LMHead;
  TransposeLMHead = Fresh.TransposeLMHead;
  LMHeadTransposed.clear();
  LMHeadOnce = std::make_unique<std::once_flag>();
  LMHeadCalls = 0;
  FinalNorm = std::move(Fresh.FinalNorm);
  Layers = std::move(Fresh.Layers);
  Bound = std::move(Fresh.Bound);
  return Error::success();
}

void Model::lmHeadLogits(const float *X, size_t T, size_t N0, size_t N1,
                         float *Y, size_t YStride) const {
  const WeightMatrix &W = LMHead;
  if (TransposeLMHead && LMHeadCalls.fetch_add(1) >= 3) {
    std::call_once(*LMHeadOnce, [&] {
      LMHeadTransposed.resize(W.Rows * W.Cols);
      for (size_t R = 0; R < W.Rows; ++R)
        for (size_t C = 0; C < W.Cols; ++C)
          LMHeadTransposed[C * W.Rows + R] = W.at(R, C);
    });
    gemmKN(X, T, W.Cols, LMHeadTransposed.data(), W.Cols, W.Rows, N0, N1, Y,
           YStride, /*Accumulate=*/false);
    return;
  }
  matmulNTRowPanels(X, T, W.Cols, W, N0, N1, Y, YStride);
}

size_t Model::maxFFNWidth() const {
  size_t F = 0;
  for (const LayerWeights &W : Layers)
    F = std::max(F, W.Gate.Rows);
  return F;
}

/// A tensor the engine would not use changes the model (an MLP bias, an
/// o_proj bias...): refuse rather than compute something else.
static Error checkEveryTensorUsed(const TensorView &V, const ModelConfig &C) {
  for (const TensorRecord *TP : V.tensors()) {
    const TensorRecord &T = *TP;
    bool Unused = T.Role == TensorRole::Other ||
                  (!C.AttentionBias && (T.Role == TensorRole::AttnQBias ||
                                        T.Role == TensorRole::AttnKBias ||
                                        T.Role == TensorRole::AttnVBias)) ||
                  (!C.QKNorm && (T.Role == TensorRole::AttnQNorm ||
                                 T.Role == TensorRole::AttnKNorm)) ||
                  (!C.PostNorms && (T.Role == TensorRole::PreFFNNorm ||
                                    T.Role == TensorRole::PostFFNNorm));
    if (Unused)
      return makeError("{0}: the engine does not support tensor '{1}'",
                       V.base().directory(), T.Name);
  }
  return Error::success();
}

/// Layer L's matrices and vectors (the norms with NormAdd added) and its
/// RoPE frequencies.
static Error bindLayer(Binder &B, const TensorView &V, const ModelConfig &C,
                       size_t L, float NormAdd, LayerWeights &W) {
  size_t D = C.HiddenSize, HD = C.HeadDim;
  size_t QDim = C.NumHeads * HD, KVDim = C.NumKVHeads * HD;
  int I = int(L);
  size_t F = V.ffnWidth(unsigned(L)); // appended slots widen a layer
  struct MatrixSpec {
    TensorRole Role;
    size_t Rows, Cols;
    WeightMatrix LayerWeights::*Field;
  };
  const MatrixSpec Matrices[] = {
      {TensorRole::AttnQ, QDim, D, &LayerWeights::Q},
      {TensorRole::AttnK, KVDim, D, &LayerWeights::K},
      {TensorRole::AttnV, KVDim, D, &LayerWeights::V},
      {TensorRole::AttnO, D, QDim, &LayerWeights::O},
      {TensorRole::FFNGate, F, D, &LayerWeights::Gate},
      {TensorRole::FFNUp, F, D, &LayerWeights::Up},
      {TensorRole::FFNDown, F, D, &LayerWeights::Down}};
  for (const MatrixSpec &S : Matrices) {
    Expected<WeightMatrix> M = B.matrix(S.Role, I, S.Rows, S.Cols);
    if (!M)
      return M.takeError();
    W.*S.Field = *M;
  }
  struct VectorSpec {
    TensorRole Role;
    size_t N;
    float Add;
    std::vector<float> LayerWeights::*Field;
    bool Present;
  };
  const VectorSpec Vectors[] = {
      {TensorRole::InputNorm, D, NormAdd, &LayerWeights::InputNorm, true},
      {TensorRole::PostAttnNorm, D, NormAdd, &LayerWeights::PostAttnNorm, true},
      {TensorRole::PreFFNNorm, D, NormAdd, &LayerWeights::PreFFNNorm,
       C.PostNorms},
      {TensorRole::PostFFNNorm, D, NormAdd, &LayerWeights::PostFFNNorm,
       C.PostNorms},
      {TensorRole::AttnQNorm, HD, NormAdd, &LayerWeights::QNorm, C.QKNorm},
      {TensorRole::AttnKNorm, HD, NormAdd, &LayerWeights::KNorm, C.QKNorm},
      {TensorRole::AttnQBias, QDim, 0, &LayerWeights::QBias, C.AttentionBias},
      {TensorRole::AttnKBias, KVDim, 0, &LayerWeights::KBias, C.AttentionBias},
      {TensorRole::AttnVBias, KVDim, 0, &LayerWeights::VBias, C.AttentionBias}};
  for (const VectorSpec &S : Vectors) {
    if (!S.Present)
      continue;
    Expected<std::vector<float>> Vec = B.vector(S.Role, I, S.N, S.Add);
    if (!Vec)
      return Vec.takeError();
    W.*S.Field = std::move(*Vec);
  }
  W.Sliding = L < C.LayerKinds.size() && C.LayerKinds[L] == LayerKind::Sliding;
  Expected<std::vector<float>> Inv = ropeInverseFrequencies(C, W.Sliding);
  if (!Inv)
    return Inv.takeError();
  W.RopeInvFreq = std::move(*Inv);
  return Error::success();
}

Error Model::bind(const BoundMatrices *Reuse, uint64_t Since) {
  const TensorView &V = *View;
  Generation = V.generation();
  Config = V.config();
  const ModelConfig &C = Config;
  if (!findArchitecture(C.Architecture))
    return makeError("{0}: the engine does not run '{1}'", V.base().directory(),
                     C.Architecture);
  if (Error E = checkEveryTensorUsed(V, C))
    return E;
  Binder B(V, Bound);
  B.Reuse = Reuse;
  B.Since = Since;
  // Models whose weights fit the budget as f32 are widened once at load;
  // larger ones run from the mapped bytes.
  uint64_t Elements = 0;
  for (const TensorRecord *T : V.tensors())
    Elements += numElements(V.record(*T).Dims).value_or(0);
  B.WidenBF16 = Elements * 4 <= Opts.WidenBudget;
  TransposeLMHead = B.WidenBF16;
  size_t D = C.HiddenSize;
  float NormAdd = C.Norm == NormStyle::OnePlusWeight ? 1.0f : 0.0f;

  Expected<WeightMatrix> Emb =
      B.matrix(TensorRole::Embedding, -1, C.VocabSize, D, /*InPlace=*/true);
  if (!Emb)
    return Emb.takeError();
  Embedding = *Emb;
  if (C.TiedEmbeddings && !B.find(TensorRole::LMHead, -1)) {
    LMHead = Embedding;
  } else {
    Expected<WeightMatrix> Head =
        B.matrix(TensorRole::LMHead, -1, C.VocabSize, D, /*InPlace=*/true);
    if (!Head)
      return Head.takeError();
    LMHead = *Head;
  }
  Expected<std::vector<float>> Final =
      B.vector(TensorRole::FinalNorm, -1, D, NormAdd);
  if (!Final)
    return Final.takeError();
  FinalNorm = std::move(*Final);

  Layers.resize(C.NumLayers);
  for (size_t L = 0; L < C.NumLayers; ++L)
    if (Error E = bindLayer(B, V, C, L, NormAdd, Layers[L]))
      return E;
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

ArrayRef<float> LayerWeights::walkScale() const {
  // Computed on first use: it reads all of up and down, which a model that
  // never walks should not pay for at load.
  std::call_once(*WalkScaleOnce, [&] {
    size_t F = Up.Rows, D = Up.Cols;
    WalkScale.resize(F);
    std::vector<float> Row(D);
    for (size_t I = 0; I < F; ++I) {
      double U = 0, Dn = 0;
      for (size_t J = 0; J < D; ++J) {
        U += double(Up.at(I, J)) * Up.at(I, J);
        Dn += double(Down.at(I, J)) * Down.at(I, J);
      }
      WalkScale[I] = float(std::sqrt(U * Dn));
    }
  });
  return WalkScale;
}

size_t argmax(ArrayRef<float> V) {
  return std::max_element(V.begin(), V.end()) - V.begin();
}

static void rmsNorm(const float *X, size_t N, ArrayRef<float> W, double Eps,
                    float *Out) {
  double SumSq = 0;
  for (size_t I = 0; I < N; ++I)
    SumSq += double(X[I]) * X[I];
  float Scale = float(1.0 / std::sqrt(SumSq / double(N) + Eps));
  for (size_t I = 0; I < N; ++I)
    Out[I] = (X[I] * Scale) * W[I];
}

// cos and sin of position P's angles (computed once per token and layer,
// shared by every head).
static void ropeAngles(ArrayRef<float> InvFreq, size_t P, float *Cos,
                       float *Sin) {
  for (size_t I = 0; I < InvFreq.size(); ++I) {
    float Angle = float(P) * InvFreq[I];
    Cos[I] = std::cos(Angle);
    Sin[I] = std::sin(Angle);
  }
}

// Rotate-half RoPE of one head vector.
static void applyRope(float *V, size_t HD, const float *Cos, const float *Sin) {
  size_t Half = HD / 2;
  for (size_t I = 0; I < Half; ++I) {
    float A = V[I], B = V[I + Half];
    V[I] = A * Cos[I] - B * Sin[I];
    V[I + Half] = B * Cos[I] + A * Sin[I];
  }
}

/// Buf with room for at least N floats, its contents unspecified: the
/// forward pass's buffers are kept between calls (Session::Workspace).
static float *room(std::vector<float> &Buf, size_t N) {
  if (Buf.size() < N)
    Buf.resize(N);
  return Buf.data();
}

// The prompt GEMM tiles are 48 columns wide (AVX-512; 16 on AVX2): shares
// of a multiple of 48 rows or columns run full tiles only.
static constexpr size_t PromptShareUnit = 48;

Session::Session(const Model &M, unsigned Threads)
    : M(M),
      Threads(Threads ? Threads
                      : llvm::hardware_concurrency().compute_thread_count()) {
  if (this->Threads > 1)
    Team = std::make_unique<WorkerTeam>(this->Threads);
  KCache.resize(M.numLayers());
  VCache.resize(M.numLayers());
}

Session::~Session() = default;

void Session::parallelFor(size_t N, size_t Grain,
                          const std::function<void(size_t, size_t)> &Body) {
  if (!Team || N <= Grain) {
    Body(0, N);
    return;
  }
  size_t Chunks = std::min<size_t>(Threads * 8, (N + Grain - 1) / Grain);
  size_t Step = (N + Chunks - 1) / Chunks;
  Team->run((N + Step - 1) / Step,
            [&](size_t I) { Body(I * Step, std::min(N, (I + 1) * Step)); });
}

void Session::project(const float *X, size_t T, const WeightMatrix &W,
                      float *Y) {
  // Waking a thread costs microseconds: give each task at least ~256K
  // multiply-adds.
  size_t Grain =
      std::max<size_t>(16, (1u << 18) / std::max<size_t>(1, T * W.Cols));
  if (T >= 4 && Team && W.Rows > Grain) {
    // Prompts: shares in units of PromptShareUnit rows, so that no thread
    // ends its share with a narrow, slower tile.
    size_t Units = (W.Rows + PromptShareUnit - 1) / PromptShareUnit;
    parallelFor(Units, 1, [&](size_t U0, size_t U1) {
      matmulNT(X, T, W.Cols, W, U0 * PromptShareUnit,
               std::min(W.Rows, U1 * PromptShareUnit), Y, W.Rows);
    });
    return;
  }
  parallelFor(W.Rows, Grain, [&](size_t N0, size_t N1) {
    matmulNT(X, T, W.Cols, W, N0, N1, Y, W.Rows);
  });
}

void Session::attention(const LayerWeights &W, size_t Layer, const float *X,
                        size_t T, float *Out, ArrayRef<Session *> Rows,
                        ArrayRef<size_t> Positions) {
  const ModelConfig &C = M.config();
  size_t HD = C.HeadDim, NH = C.NumHeads, NKV = C.NumKVHeads;
  size_t QDim = NH * HD, KVDim = NKV * HD;
  float *Q = room(Work.Q, T * QDim), *K = room(Work.K, T * KVDim),
        *V = room(Work.V, T * KVDim);
  project(X, T, W.Q, Q);
  project(X, T, W.K, K);
  project(X, T, W.V, V);
  std::vector<float> Cos(HD / 2), Sin(HD / 2);
  for (size_t Tk = 0; Tk < T; ++Tk) {
    ropeAngles(W.RopeInvFreq, Positions[Tk], Cos.data(), Sin.data());
    for (size_t I = 0; I < W.QBias.size(); ++I)
      Q[Tk * QDim + I] += W.QBias[I];
    for (size_t I = 0; I < W.KBias.size(); ++I)
      K[Tk * KVDim + I] += W.KBias[I];
    for (size_t I = 0; I < W.VBias.size(); ++I)
      V[Tk * KVDim + I] += W.VBias[I];
    for (size_t H = 0; H < NH; ++H) {
      float *QH = &Q[Tk * QDim + H * HD];
      if (C.QKNorm)
        rmsNorm(QH, HD, W.QNorm, C.NormEps, QH);
      applyRope(QH, HD, Cos.data(), Sin.data());
    }
    for (size_t H = 0; H < NKV; ++H) {
      float *KH = &K[Tk * KVDim + H * HD];
      if (C.QKNorm)
        rmsNorm(KH, HD, W.KNorm, C.NormEps, KH);
      applyRope(KH, HD, Cos.data(), Sin.data());
    }
  }
  // Each row's key and value into its session's cache, which ends at the
  // session's last row.
  for (size_t Tk = 0; Tk < T; ++Tk)
    if (Tk + 1 == T || Rows[Tk + 1] != Rows[Tk]) {
      Rows[Tk]->KCache[Layer].resize((Positions[Tk] + 1) * KVDim);
      Rows[Tk]->VCache[Layer].resize((Positions[Tk] + 1) * KVDim);
    }
  for (size_t Tk = 0; Tk < T; ++Tk) {
    std::vector<float> &KC = Rows[Tk]->KCache[Layer],
                       &VC = Rows[Tk]->VCache[Layer];
    std::copy(K + Tk * KVDim, K + (Tk + 1) * KVDim,
              KC.begin() + Positions[Tk] * KVDim);
    std::copy(V + Tk * KVDim, V + (Tk + 1) * KVDim,
              VC.begin() + Positions[Tk] * KVDim);
  }

  float *Attn = room(Work.Attn, T * QDim);
  size_t Group = NH / NKV;
  size_t Window = W.Sliding ? C.SlidingWindow : 0;
  float Scale = float(C.QueryScale);
  float Cap = float(C.AttnSoftcap);
  size_t AttnGrain =
      std::max<size_t>(1, (1u << 17) / ((Positions.back() + 1) * HD + 1));
  parallelFor(NH * T, AttnGrain, [&](size_t B, size_t E) {
    std::vector<float> Scores;
    for (size_t Job = B; Job < E; ++Job) {
      size_t H = Job / T, Tk = Job % T, P = Positions[Tk];
      const std::vector<float> &KC = Rows[Tk]->KCache[Layer],
                               &VC = Rows[Tk]->VCache[Layer];
      size_t Lo = Window && P + 1 > Window ? P + 1 - Window : 0;
      const float *QH = &Q[Tk * QDim + H * HD];
      size_t KVH = H / Group;
      size_t N = P + 1 - Lo;
      Scores.resize(N);
      // dotF32 and axpyF32 over the keys and values, several rows per
      // kernel call (the same bits as one call per row).
      dotRowsF32(QH, &KC[Lo * KVDim + KVH * HD], KVDim, N, HD, Scores.data());
      float Max = -INFINITY;
      for (float &S : Scores) {
        S *= Scale;
        if (Cap > 0)
          S = Cap * std::tanh(S / Cap);
        Max = std::max(Max, S);
      }
      double Sum = 0;
      for (float &S : Scores) {
        S = std::exp(S - Max);
        Sum += S;
      }
      float Inv = float(1.0 / Sum);
      for (float &S : Scores)
        S *= Inv;
      float *O = &Attn[Tk * QDim + H * HD];
      std::fill(O, O + HD, 0.0f);
      axpyRowsF32(Scores.data(), &VC[Lo * KVDim + KVH * HD], KVDim, N, HD, O);
    }
  });
  project(Attn, T, W.O, Out);
}

void Session::ffn(const LayerWeights &W, const float *X, size_t T, size_t WalkK,
                  float *Out, std::vector<float> *Activations) {
  const ModelConfig &C = M.config();
  size_t F = W.Gate.Rows, D = C.HiddenSize; // per layer: patches append
  float *G = room(Work.Gate, T * F);
  project(X, T, W.Gate, G);
  if (WalkK == 0 || WalkK >= F) {
    // Dense (K = F is the walk with every feature fired: the same sums in
    // the same order).
    float *U = room(Work.Up, T * F);
    project(X, T, W.Up, U);
    activateAndMultiply(C.Act, G, U, T * F);
    downProject(W, G, T, Out);
    if (Activations)
      Activations->assign(G, G + T * F);
    return;
  }
  // Walk: per position, score every feature from its gate (exact KNN over
  // the gate vectors: one dot product each), fire the K best, and
  // accumulate only their down vectors, in feature order. The score bounds
  // the feature's contribution: |act(gate)| * |up| * |down| (the input's
  // norm is common to all), which ranks SwiGLU's negative-gate features
  // correctly where the raw gate score would not.
  std::fill(Out, Out + T * D, 0.0f);
  if (Activations)
    Activations->assign(T * F, 0.0f);
  std::vector<uint32_t> Order(F);
  std::vector<float> Score(F), Ones(F, 1.0f), Acts(WalkK), Ups(WalkK);
  ArrayRef<float> Scale = W.walkScale();
  for (size_t Tk = 0; Tk < T; ++Tk) {
    const float *GT = &G[Tk * F];
    std::copy(GT, GT + F, Score.begin());
    activateAndMultiply(C.Act, Score.data(), Ones.data(), F);
    for (size_t I = 0; I < F; ++I)
      Score[I] = std::fabs(Score[I]) * Scale[I];
    std::iota(Order.begin(), Order.end(), 0);
    std::nth_element(Order.begin(), Order.begin() + WalkK, Order.end(),
                     [&](uint32_t A, uint32_t B) {
                       return Score[A] > Score[B] ||
                              (Score[A] == Score[B] && A < B);
                     });
    std::sort(Order.begin(), Order.begin() + WalkK);
    const float *XT = X + Tk * D;
    float *OT = Out + Tk * D;
    for (size_t J = 0; J < WalkK; ++J)
      Acts[J] = GT[Order[J]];
    // Only the fired rows of up and down are read. Both kernels give every
    // element the same chain however the work is split: the rows in shares
    // of 16, the columns in shares of 32 (a cache line of bf16).
    parallelFor(WalkK, 64, [&](size_t J0, size_t J1) {
      dotRowsGathered(XT, W.Up, &Order[J0], J1 - J0, &Ups[J0]);
    });
    activateAndMultiply(C.Act, Acts.data(), Ups.data(), WalkK);
    size_t Lines = (D + 31) / 32;
    parallelFor(Lines, 8, [&](size_t L0, size_t L1) {
      axpyRowsGathered(Acts.data(), W.Down, Order.data(), WalkK, L0 * 32,
                       std::min(D, L1 * 32), OT);
    });
    if (Activations)
      for (size_t J = 0; J < WalkK; ++J)
        (*Activations)[Tk * F + Order[J]] = Acts[J];
  }
}

void Session::downProject(const LayerWeights &W, const float *G, size_t T,
                          float *Out) {
  size_t F = W.Down.Rows, D = M.config().HiddenSize;
  std::fill(Out, Out + T * D, 0.0f);
  size_t Grain = std::max<size_t>(32, (1u << 18) / std::max<size_t>(1, T * F));
  // Generation: one share of columns per thread, a multiple of 32 (the
  // kernel reads a cache line of each row at a time): narrower shares
  // would read every row in short pieces, which streams poorly.
  if (T < 4)
    Grain = std::max(Grain, (D + 32 * Threads - 1) / (32 * Threads) * 32);
  if (T >= 4 && Team && D > Grain) {
    size_t Units = (D + PromptShareUnit - 1) / PromptShareUnit;
    parallelFor(Units, 1, [&](size_t U0, size_t U1) {
      matmulNN(G, T, F, W.Down, 0, F, U0 * PromptShareUnit,
               std::min(D, U1 * PromptShareUnit), Out, D);
    });
  } else {
    parallelFor(D, Grain, [&](size_t C0, size_t C1) {
      matmulNN(G, T, F, W.Down, 0, F, C0, C1, Out, D);
    });
  }
}

void Session::ffnRows(const LayerWeights &W, const float *X, size_t T,
                      ArrayRef<size_t> Rows, size_t WalkK, float *Out,
                      std::vector<float> *Activations) {
  size_t F = W.Gate.Rows, D = M.config().HiddenSize, N = Rows.size();
  assert(llvm::all_of(Rows, [&](size_t R) { return R < T; }) &&
         "output rows within the call");
  // A row's FFN does not depend on the rows beside it (EngineTest,
  // RunManyGivesEachSequenceItsRows): the rows asked for, gathered, give
  // what they give among the others.
  std::vector<float> In(N * D), Part(N * D), PartAct;
  for (size_t I = 0; I < N; ++I)
    std::copy_n(X + Rows[I] * D, D, &In[I * D]);
  ffn(W, In.data(), N, WalkK, Part.data(), Activations ? &PartAct : nullptr);
  std::fill(Out, Out + T * D, 0.0f);
  for (size_t I = 0; I < N; ++I)
    std::copy_n(&Part[I * D], D, Out + Rows[I] * D);
  if (!Activations)
    return;
  Activations->assign(T * F, 0.0f);
  for (size_t I = 0; I < N; ++I)
    std::copy_n(&PartAct[I * F], F, Activations->data() + Rows[I] * F);
}

ForwardResult Session::run(ArrayRef<int32_t> Tokens,
                           const ForwardOptions &Opts) {
  std::vector<Session *> Rows(Tokens.size(), this);
  std::vector<size_t> Positions(Tokens.size());
  std::iota(Positions.begin(), Positions.end(), Pos);
  return forward(Rows, Positions, Tokens, Opts, Opts.AllLogits);
}

ForwardResult Session::step(ArrayRef<Session *> Sessions,
                            ArrayRef<int32_t> Tokens,
                            const ForwardOptions &Opts) {
  assert(Sessions.size() == Tokens.size() && "one token per session");
  if (Sessions.empty())
    return ForwardResult();
  std::vector<size_t> Positions;
  for (Session *S : Sessions) {
    assert(&S->M == &Sessions.front()->M && "sessions of one model");
    Positions.push_back(S->Pos);
  }
  return Sessions.front()->forward(Sessions, Positions, Tokens, Opts,
                                   /*EveryRow=*/true);
}

ForwardResult Session::runMany(ArrayRef<Session *> Sessions,
                               ArrayRef<ArrayRef<int32_t>> Tokens,
                               const ForwardOptions &Opts) {
  assert(Sessions.size() == Tokens.size() && "tokens for each session");
  std::vector<Session *> Rows;
  std::vector<size_t> Positions;
  std::vector<int32_t> Ids;
  for (size_t I = 0; I < Sessions.size(); ++I) {
    assert(&Sessions[I]->M == &Sessions.front()->M && "sessions of one model");
    for (size_t Tk = 0; Tk < Tokens[I].size(); ++Tk) {
      Rows.push_back(Sessions[I]);
      Positions.push_back(Sessions[I]->Pos + Tk);
      Ids.push_back(Tokens[I][Tk]);
    }
  }
  if (Rows.empty())
    return ForwardResult();
  return Sessions.front()->forward(Rows, Positions, Ids, Opts, Opts.AllLogits);
}

ForwardResult Session::forward(ArrayRef<Session *> Rows,
                               ArrayRef<size_t> Positions,
                               ArrayRef<int32_t> Tokens,
                               const ForwardOptions &Opts, bool EveryRow) {
  const ModelConfig &C = M.config();
  size_t T = Tokens.size(), D = C.HiddenSize;
  ForwardResult R;
  if (T == 0)
    return R;
  float *X = room(Work.X, T * D), *H = room(Work.H, T * D),
        *A = room(Work.A, T * D);
  size_t Start = std::min(Opts.StartLayer, M.numLayers());
  bool AtDown = !Opts.StartKeys.empty() && Start < M.numLayers();
  if (Start || AtDown) {
    assert(Opts.StartResidual.size() == T * D && "a residual for each row");
    llvm::copy(Opts.StartResidual, X);
  } else {
    float EmbScale = float(C.EmbeddingScale);
    for (size_t Tk = 0; Tk < T; ++Tk) {
      size_t Id = size_t(Tokens[Tk]) < C.VocabSize ? size_t(Tokens[Tk]) : 0;
      for (size_t I = 0; I < D; ++I)
        X[Tk * D + I] = M.embedding().at(Id, I) * EmbScale;
    }
  }
  if (Opts.CaptureResiduals) {
    R.Residuals.resize(Start);
    R.Residuals.emplace_back(X, X + T * D);
  }
  if (Opts.CaptureFFN)
    R.FFNActivations.resize(Start);
  size_t Layers =
      std::min(Opts.StopAfter.value_or(M.numLayers()), M.numLayers());
  for (size_t L = Start; L < Layers; ++L) {
    const LayerWeights &W = M.layer(L);
    bool Resumed = AtDown && L == Start; // X is after the attention
    if (!Resumed) {
      for (size_t Tk = 0; Tk < T; ++Tk)
        rmsNorm(&X[Tk * D], D, W.InputNorm, C.NormEps, &H[Tk * D]);
      attention(W, L, H, T, A, Rows, Positions);
    }
    for (size_t Tk = 0; Tk < T; ++Tk) {
      if (!Resumed) {
        if (C.PostNorms)
          rmsNorm(&A[Tk * D], D, W.PostAttnNorm, C.NormEps, &A[Tk * D]);
        for (size_t I = 0; I < D; ++I)
          X[Tk * D + I] += A[Tk * D + I];
      }
      rmsNorm(&X[Tk * D], D, C.PostNorms ? W.PreFFNNorm : W.PostAttnNorm,
              C.NormEps, &H[Tk * D]);
    }
    if (Opts.CaptureAttentionResidual == L) {
      R.AttentionResiduals.resize(L + 1);
      R.AttentionResiduals[L].assign(X, X + T * D);
    }
    std::vector<float> Act;
    std::vector<float> *Capture =
        Opts.CaptureFFN && (!Opts.CaptureFFNLayer || *Opts.CaptureFFNLayer == L)
            ? &Act
            : nullptr;
    if (Resumed) {
      size_t F = W.Down.Rows;
      assert(Opts.StartKeys.size() == T * F && "keys for each row");
      assert(Opts.WalkK == 0 && "the dense FFN resumes at its down");
      downProject(W, Opts.StartKeys.data(), T, A);
      if (Capture)
        Capture->assign(Opts.StartKeys.begin(), Opts.StartKeys.begin() + T * F);
    } else if (L + 1 == Layers && !Opts.OutputRows.empty()) {
      ffnRows(W, H, T, Opts.OutputRows, Opts.WalkK, A, Capture);
    } else {
      ffn(W, H, T, Opts.WalkK, A, Capture);
    }
    if (Opts.AfterFFN)
      Opts.AfterFFN(L, Positions.front(), T, ArrayRef<float>(H, T * D),
                    MutableArrayRef<float>(A, T * D));
    for (size_t Tk = 0; Tk < T; ++Tk) {
      if (C.PostNorms)
        rmsNorm(&A[Tk * D], D, W.PostFFNNorm, C.NormEps, &A[Tk * D]);
      for (size_t I = 0; I < D; ++I)
        X[Tk * D + I] += A[Tk * D + I];
    }
    if (Opts.AfterLayer)
      Opts.AfterLayer(L, Positions.front(), T,
                      MutableArrayRef<float>(X, T * D));
    if (Opts.CaptureResiduals)
      R.Residuals.emplace_back(X, X + T * D);
    if (Opts.CaptureFFN)
      R.FFNActivations.push_back(std::move(Act));
  }
  bool Partial = Layers < M.numLayers() || Start > 0 || AtDown;
  for (size_t Tk = 0; Tk < T; ++Tk)
    if (Partial)
      Rows[Tk]->reset();
    else
      Rows[Tk]->Pos = Positions[Tk] + 1;
  if (Layers < M.numLayers())
    return R;

  size_t First = EveryRow ? 0 : T - 1, N = T - First;
  std::vector<float> Normed(N * D);
  for (size_t Tk = 0; Tk < N; ++Tk)
    rmsNorm(&X[(First + Tk) * D], D, M.finalNorm(), C.NormEps, &Normed[Tk * D]);
  R.FinalNormLast.assign(Normed.end() - D, Normed.end());
  R.Logits.resize(N * C.VocabSize);
  const WeightMatrix &Head = M.lmHead();
  size_t Grain = std::max<size_t>(64, (1u << 18) / std::max<size_t>(1, N * D));
  parallelFor(Head.Rows, Grain, [&](size_t N0, size_t N1) {
    M.lmHeadLogits(Normed.data(), N, N0, N1, R.Logits.data(), Head.Rows);
  });
  if (C.FinalSoftcap > 0) {
    float Cap = float(C.FinalSoftcap);
    for (float &V : R.Logits)
      V = Cap * std::tanh(V / Cap);
  }
  return R;
}

std::vector<int32_t> Session::generate(ArrayRef<int32_t> Prompt, size_t MaxNew,
                                       ArrayRef<int64_t> Stop,
                                       const ForwardOptions &Opts) {
  reset();
  std::vector<int32_t> Out;
  if (Prompt.empty() || MaxNew == 0)
    return Out;
  std::vector<float> Logits = run(Prompt, Opts).Logits;
  while (Out.size() < MaxNew) {
    int32_t Next = int32_t(argmax(Logits));
    Out.push_back(Next);
    if (is_contained(Stop, int64_t(Next)) || Out.size() == MaxNew)
      break;
    Logits = run({Next}, Opts).Logits;
  }
  return Out;
}

std::vector<std::vector<int32_t>>
Session::generateMany(const Model &M, ArrayRef<std::vector<int32_t>> Prompts,
                      size_t MaxNew, ArrayRef<int64_t> Stop, unsigned Threads,
                      size_t Batch) {
  return generateMany(M, Prompts, std::vector<size_t>(Prompts.size(), MaxNew),
                      Stop, Threads, Batch);
}

std::vector<std::vector<int32_t>>
Session::generateMany(const Model &M, ArrayRef<std::vector<int32_t>> Prompts,
                      ArrayRef<size_t> MaxNew, ArrayRef<int64_t> Stop,
                      unsigned Threads, size_t Batch) {
  assert(MaxNew.size() == Prompts.size() && "a limit for each prompt");
  std::vector<std::vector<int32_t>> Out(Prompts.size());
  if (llvm::all_of(MaxNew, [](size_t N) { return N == 0; }))
    return Out;
  // A batch's lead session runs it (its threads, its scratch space); the
  // sequences' own sessions hold only their caches.
  Batch = std::max<size_t>(1, Batch);
  size_t Batches = (Prompts.size() + Batch - 1) / Batch;
  forEachBatch(M, Batches, Threads, [&](size_t BI, unsigned LeadThreads) {
    Session Lead(M, LeadThreads);
    size_t B = BI * Batch;
    size_t E = std::min(Prompts.size(), B + Batch);
    std::vector<std::unique_ptr<Session>> Seqs;
    std::vector<bool> Done(E - B, false);
    for (size_t I = B; I < E; ++I) {
      Seqs.push_back(std::make_unique<Session>(M, 1));
      Done[I - B] = Prompts[I].empty() || MaxNew[I] == 0;
    }
    std::vector<size_t> Active, Positions;
    std::vector<Session *> Rows;
    std::vector<int32_t> Tokens;
    for (size_t Step = 0;; ++Step) {
      Active.clear();
      Positions.clear();
      Rows.clear();
      Tokens.clear();
      // Each sequence feeds its prompt, then what it generated, a token a
      // step.
      for (size_t I = B; I < E; ++I) {
        const std::vector<int32_t> &P = Prompts[I];
        if (Done[I - B] || Step >= P.size() + Out[I].size())
          continue;
        Active.push_back(I);
        Rows.push_back(Seqs[I - B].get());
        Positions.push_back(Step);
        Tokens.push_back(Step < P.size() ? P[Step] : Out[I][Step - P.size()]);
      }
      if (Active.empty())
        break;
      std::vector<float> Logits =
          Lead.forward(Rows, Positions, Tokens, {}, /*EveryRow=*/true).Logits;
      size_t V = M.config().VocabSize;
      for (size_t R = 0; R < Active.size(); ++R) {
        size_t I = Active[R];
        if (Step + 1 < Prompts[I].size())
          continue;
        int32_t Next =
            int32_t(argmax(ArrayRef<float>(Logits.data() + R * V, V)));
        Out[I].push_back(Next);
        if (is_contained(Stop, int64_t(Next)) || Out[I].size() == MaxNew[I])
          Done[I - B] = true;
      }
    }
  });
  return Out;
}

ForwardResult Session::runTexts(const Model &M,
                                ArrayRef<ArrayRef<int32_t>> Texts,
                                const ForwardOptions &Opts, unsigned Threads) {
  std::vector<std::unique_ptr<Session>> Sessions;
  std::vector<Session *> Rows;
  for (size_t I = 0; I < Texts.size(); ++I) {
    Sessions.push_back(std::make_unique<Session>(M, I ? 1 : Threads));
    Rows.push_back(Sessions.back().get());
  }
  return runMany(Rows, Texts, Opts);
}

/// Whether threads should take whole batches rather than share each
/// product: a layer's weights under a million elements.
static bool batchesSideBySide(const Model &M) {
  if (M.numLayers() == 0)
    return true;
  const LayerWeights &W = M.layer(0);
  size_t Elements = 0;
  for (const WeightMatrix *X :
       {&W.Q, &W.K, &W.V, &W.O, &W.Gate, &W.Up, &W.Down})
    Elements += X->Rows * X->Cols;
  return Elements < (size_t(1) << 20);
}

void forEachBatch(const Model &M, size_t Count, unsigned Threads,
                  function_ref<void(size_t Batch, unsigned Threads)> Work) {
  Threads = std::max(1u, Threads);
  if (Threads == 1 || Count < 2 || !batchesSideBySide(M)) {
    for (size_t B = 0; B < Count; ++B)
      Work(B, Threads);
    return;
  }
  std::atomic<size_t> Next{0};
  llvm::DefaultThreadPool Pool(llvm::hardware_concurrency(Threads));
  for (unsigned T = 0; T < std::min<size_t>(Threads, Count); ++T)
    Pool.async([&] {
      for (size_t B; (B = Next++) < Count;)
        Work(B, 1);
    });
  Pool.wait();
}

} // namespace vindex
