//===- Keys.cpp - Keys, key statistics and the slot separator -------------===//
//
// The key of a layer is the FFN input after the pre-FFN norm: the vector
// gate and up multiply, so what a new feature's gate can respond to. The
// statistics (mean, second moment) describe the layer's ordinary inputs;
// the separator is fitted against them.
//
//===----------------------------------------------------------------------===//
#include "Internal.h"

#include "vindex/Formats/DType.h"
#include "vindex/Model/Kernels.h"

#include <cmath>

using namespace llvm;

namespace vindex::edit {

double dot(ArrayRef<float> A, ArrayRef<float> B) {
  double S = 0;
  for (size_t I = 0; I < A.size(); ++I)
    S += double(A[I]) * B[I];
  return S;
}

std::vector<double> softmax(ArrayRef<float> Logits) {
  float Max = *std::max_element(Logits.begin(), Logits.end());
  std::vector<double> P(Logits.size());
  double Sum = 0;
  for (size_t I = 0; I < Logits.size(); ++I)
    Sum += P[I] = std::exp(double(Logits[I]) - Max);
  for (double &X : P)
    X /= Sum;
  return P;
}

void roundTo(DType T, std::vector<float> &V) {
  for (float &X : V) {
    if (T == DType::BF16)
      X = bf16ToFloat(floatToBF16(X));
    else if (T == DType::F16)
      X = f16ToFloat(floatToF16(X));
  }
}

ForwardOptions trialOptions(const Model &M, ArrayRef<TrialFeature> Trials,
                            std::vector<std::vector<float>> *Inputs) {
  ForwardOptions O;
  if (Trials.empty() && !Inputs)
    return O;
  size_t D = M.config().HiddenSize;
  Activation Act = M.config().Act;
  if (Inputs)
    Inputs->assign(M.numLayers(), std::vector<float>(D));
  std::vector<TrialFeature> Copy(Trials.begin(), Trials.end());
  O.AfterFFN = [Copy = std::move(Copy), Inputs, D,
                Act](size_t Layer, size_t, size_t T, ArrayRef<float> In,
                     MutableArrayRef<float> Out) {
    if (Inputs)
      std::copy(In.end() - D, In.end(), (*Inputs)[Layer].begin());
    for (const TrialFeature &F : Copy) {
      if (F.Layer != Layer)
        continue;
      for (size_t Tk = 0; Tk < T; ++Tk) {
        const float *X = &In[Tk * D];
        float G = dotF32(F.Gate.data(), X, D);
        float U = dotF32(F.Up.data(), X, D);
        activateAndMultiply(Act, &G, &U, 1);
        axpyF32(G, F.Down.data(), &Out[Tk * D], D);
      }
    }
  };
  return O;
}

std::vector<std::vector<float>> captureKeys(const Model &M,
                                            ArrayRef<int32_t> Ids,
                                            ArrayRef<TrialFeature> Trials) {
  std::vector<std::vector<float>> Keys;
  ForwardOptions O = trialOptions(M, Trials, &Keys);
  O.StopAfter = M.numLayers(); // keys only: no LM head needed
  Session S(M, 1);
  S.run(Ids, O);
  return Keys;
}

void LayerStats::add(const float *X) {
  if (Mean.empty()) {
    Mean.assign(D, 0);
    Second.assign(D * D, 0);
  }
  Count += 1;
  for (size_t I = 0; I < D; ++I) {
    Mean[I] += X[I];
    double XI = X[I];
    double *Row = &Second[I * D];
    for (size_t J = 0; J < D; ++J)
      Row[J] += XI * X[J];
  }
}

void LayerStats::finish() {
  if (Count == 0)
    return;
  for (double &V : Mean)
    V /= Count;
  for (double &V : Second)
    V /= Count;
}

void addTraceRidge(std::vector<double> &A, size_t N) {
  double Trace = 0;
  for (size_t I = 0; I < N; ++I)
    Trace += A[I * N + I];
  double Lambda = 1e-4 * Trace / double(N);
  for (size_t I = 0; I < N; ++I)
    A[I * N + I] += Lambda;
}

bool solveSPD(std::vector<double> A, std::vector<double> &B, size_t N) {
  // A = L L^T in place (lower triangle).
  for (size_t J = 0; J < N; ++J) {
    double S = A[J * N + J];
    for (size_t K = 0; K < J; ++K)
      S -= A[J * N + K] * A[J * N + K];
    if (!(S > 0))
      return false;
    double Ljj = std::sqrt(S);
    A[J * N + J] = Ljj;
    for (size_t I = J + 1; I < N; ++I) {
      double T = A[I * N + J];
      for (size_t K = 0; K < J; ++K)
        T -= A[I * N + K] * A[J * N + K];
      A[I * N + J] = T / Ljj;
    }
  }
  for (size_t I = 0; I < N; ++I) { // L y = b
    double T = B[I];
    for (size_t K = 0; K < I; ++K)
      T -= A[I * N + K] * B[K];
    B[I] = T / A[I * N + I];
  }
  for (size_t I = N; I-- > 0;) { // L^T x = y
    double T = B[I];
    for (size_t K = I + 1; K < N; ++K)
      T -= A[K * N + I] * B[K];
    B[I] = T / A[I * N + I];
  }
  return true;
}

std::vector<std::vector<std::vector<float>>>
capturePositionKeys(const Model &M, ArrayRef<int32_t> Ids,
                    ArrayRef<TrialFeature> Trials) {
  size_t D = M.config().HiddenSize;
  std::vector<std::vector<std::vector<float>>> Out(
      Ids.size(), std::vector<std::vector<float>>(M.numLayers()));
  ForwardOptions O = trialOptions(M, Trials);
  auto Add = O.AfterFFN;
  O.AfterFFN = [&, Add](size_t Layer, size_t Start, size_t T,
                        ArrayRef<float> In, MutableArrayRef<float> Output) {
    for (size_t Tk = 0; Tk < T; ++Tk)
      Out[Tk][Layer].assign(In.begin() + Tk * D, In.begin() + (Tk + 1) * D);
    if (Add)
      Add(Layer, Start, T, In, Output);
  };
  Session S(M, 1);
  S.run(Ids, O);
  return Out;
}

std::vector<double> fitSeparator(const LayerStats &Stats, ArrayRef<float> Key,
                                 ArrayRef<std::vector<float>> Negatives,
                                 ArrayRef<std::vector<float>> Siblings) {
  // Minimise E_stats[(g.x + 1)^2] + E_neg[(g.x + 1)^2] + W (g.k - 1)^2
  // + lambda |g|^2: the normal equations are
  // (C + C_neg + W k k^T + lambda I) g = -mu - mu_neg + W k.
  size_t D = Stats.D;
  std::vector<double> A = Stats.Second, B(D);
  for (size_t I = 0; I < D; ++I)
    B[I] = -Stats.Mean[I];
  if (!Negatives.empty()) {
    double W = 1.0 / Negatives.size();
    for (const std::vector<float> &X : Negatives)
      for (size_t I = 0; I < D; ++I) {
        B[I] -= W * X[I];
        for (size_t J = 0; J < D; ++J)
          A[I * D + J] += W * double(X[I]) * X[J];
      }
  }
  // The key weighs as much as all the ordinary inputs together.
  const double WKey = 2.0;
  for (const std::vector<float> &X : Siblings)
    for (size_t I = 0; I < D; ++I) {
      B[I] -= WKey * X[I];
      for (size_t J = 0; J < D; ++J)
        A[I * D + J] += WKey * double(X[I]) * X[J];
    }
  for (size_t I = 0; I < D; ++I) {
    B[I] += WKey * Key[I];
    for (size_t J = 0; J < D; ++J)
      A[I * D + J] += WKey * double(Key[I]) * Key[J];
  }
  addTraceRidge(A, D);
  if (!solveSPD(A, B, D))
    return std::vector<double>(D, 0.0);
  return B;
}

GateFit fitGate(const LayerStats &Stats, ArrayRef<std::vector<float>> Positives,
                NegativePool Pool, ArrayRef<std::vector<float>> Siblings,
                unsigned Rounds, double Margin, double Boost) {
  // fitSeparator's objective with a weight per negative:
  // (C + sum_i w_i x_i x_i^T + W_k sum_p c_p k_p k_p^T + W_k sum_s s s^T
  //  + lambda I) g = -mu - sum_i w_i x_i + W_k sum_p c_p k_p - W_k sum_s s.
  size_t D = Stats.D;
  std::vector<double> A = Stats.Second, B(D);
  for (size_t I = 0; I < D; ++I)
    B[I] = -Stats.Mean[I];
  auto AddOuter = [&](const float *X, double W, double Target) {
    for (size_t I = 0; I < D; ++I) {
      B[I] += W * Target * X[I];
      double WX = W * X[I];
      double *Row = &A[I * D];
      for (size_t J = 0; J < D; ++J)
        Row[J] += WX * X[J];
    }
  };
  const double WKey = 2.0;
  // The fact's own other positions weigh as much as the key, and are
  // reweighted like the pool (a piece's feature firing at its sibling's
  // position writes the wrong piece there: 'Atlantean' on tiny-gemma3).
  for (const std::vector<float> &X : Siblings)
    Pool.add(X, WKey);
  if (Pool.BaseSecond)
    for (size_t I = 0; I < D * D; ++I)
      A[I] += Pool.BaseWeight * (*Pool.BaseSecond)[I];
  if (Pool.BaseSum)
    for (size_t I = 0; I < D; ++I)
      B[I] -= Pool.BaseWeight * (*Pool.BaseSum)[I];
  for (size_t K : Pool.Excluded) {
    AddOuter(Pool.X[K], -Pool.BaseWeight, -1.0);
    Pool.W[K] = 0;
  }
  for (size_t K = Pool.NBase; K < Pool.X.size(); ++K)
    AddOuter(Pool.X[K], Pool.W[K], -1.0);
  // The canonical key weighs as much as all the ordinary inputs together;
  // the other prompts' keys (paraphrases) half as much between them.
  for (size_t P = 0; P < Positives.size(); ++P)
    AddOuter(Positives[P].data(),
             P == 0 ? WKey : 0.5 * WKey / double(Positives.size() - 1), 1.0);
  addTraceRidge(A, D);
  GateFit Fit;
  for (unsigned R = 0;; ++R) {
    std::vector<double> G = B;
    bool Solved = solveSPD(A, G, D);
    double K = 0;
    for (size_t I = 0; Solved && I < D; ++I)
      K += G[I] * Positives.front()[I];
    if (!Solved || !(K > 0)) {
      // The reweighted negatives outweigh the key: the fit before stands.
      if (Fit.G.empty())
        Fit.G.assign(D, 0.0);
      return Fit;
    }
    Fit.G = std::move(G);
    Fit.Violators = 0;
    Fit.WorstNegative = -1e30;
    std::vector<size_t> Up;
    for (size_t N = 0; N < Pool.X.size(); ++N) {
      if (Pool.W[N] == 0)
        continue;
      double Z = 0;
      for (size_t I = 0; I < D; ++I)
        Z += Fit.G[I] * Pool.X[N][I];
      Z /= K;
      Fit.WorstNegative = std::max(Fit.WorstNegative, Z);
      if (Z > -Margin)
        Up.push_back(N);
    }
    Fit.Violators = Up.size();
    if (Up.empty() || R == Rounds)
      return Fit;
    Fit.Rounds = R + 1;
    for (size_t N : Up) {
      double Delta = Pool.W[N] * (Boost - 1);
      Pool.W[N] += Delta;
      AddOuter(Pool.X[N], Delta, -1.0);
    }
  }
}

std::vector<float> fitQuietUp(const LayerStats &Stats,
                              ArrayRef<std::vector<float>> Positives,
                              const NegativePool &Pool,
                              ArrayRef<std::vector<float>> Siblings) {
  size_t D = Stats.D;
  std::vector<double> A = Stats.Second;
  std::vector<double> U(D, 0.0);
  auto AddOuter = [&](const float *X, double W, double Target = 0) {
    for (size_t I = 0; I < D; ++I) {
      U[I] += W * Target * X[I];
      double WX = W * X[I];
      double *Row = &A[I * D];
      for (size_t J = 0; J < D; ++J)
        Row[J] += WX * X[J];
    }
  };
  if (Pool.BaseSecond)
    for (size_t I = 0; I < D * D; ++I)
      A[I] += Pool.BaseWeight * (*Pool.BaseSecond)[I];
  for (size_t K : Pool.Excluded)
    AddOuter(Pool.X[K], -Pool.BaseWeight);
  for (size_t K = Pool.NBase; K < Pool.X.size(); ++K)
    AddOuter(Pool.X[K], Pool.W[K]);
  for (const std::vector<float> &X : Siblings)
    AddOuter(X.data(), 1.0);
  // The weights of fitGate's positives.
  const double WKey = 2.0;
  for (size_t P = 0; P < Positives.size(); ++P)
    AddOuter(Positives[P].data(),
             P == 0 ? WKey : 0.5 * WKey / double(Positives.size() - 1), 1.0);
  addTraceRidge(A, D);
  ArrayRef<float> Key = Positives.front();
  if (!solveSPD(A, U, D))
    return std::vector<float>(Key.begin(), Key.end());
  double UK = 0;
  for (size_t I = 0; I < D; ++I)
    UK += U[I] * Key[I];
  std::vector<float> Out(D);
  for (size_t I = 0; I < D; ++I)
    Out[I] = float(U[I] / UK);
  return Out;
}

} // namespace vindex::edit
