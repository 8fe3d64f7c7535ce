//===- Attribution.cpp - Crediting a fact's logit to FFN features ---------===//
//
// Direct logit attribution at the last position. The target's logit is
//   logit = U[t] . (g * x / rms(x))
// with x the final residual and g the final norm weight as applied. x is a
// sum of every layer's contributions; feature i of layer L adds
// a_i * down_i to it (a_i = act(gate_i) * up_i), or, in a model with
// post-FFN norms (Gemma), a_i * down_i * p / rms(y) with y the layer's
// whole FFN output and p the post-norm weight. Holding the RMS factors at
// their values in this forward pass, the logit is linear in each feature's
// activation and feature i's credit is
//   a_i * s_L * (down_i . r),  r = g * U[t] / rms(x) (* p for post-norms),
// s_L = 1 / rms(y) or 1. Only the last position's activations are credited
// (their effect through attention at later positions is not), and the
// softcap, a monotonic squash, is left out.
//
//===----------------------------------------------------------------------===//
#include "vindex/Probe/Probe.h"

#include <cmath>

using namespace llvm;

namespace vindex {

static double rms(ArrayRef<float> X, double Eps) {
  double Sum = 0;
  for (float V : X)
    Sum += double(V) * V;
  return std::sqrt(Sum / double(X.size()) + Eps);
}

std::vector<float> readoutVector(ArrayRef<float> FinalResidual,
                                 ArrayRef<float> FinalNorm,
                                 const WeightMatrix &Unembedding, size_t Target,
                                 double Eps) {
  size_t D = FinalResidual.size();
  float Inv = float(1 / rms(FinalResidual, Eps));
  std::vector<float> R(D);
  for (size_t I = 0; I < D; ++I)
    R[I] = FinalNorm[I] * Unembedding.at(Target, I) * Inv;
  return R;
}

void layerAttribution(ArrayRef<float> Act, const WeightMatrix &Down,
                      ArrayRef<float> Readout, float Scale,
                      MutableArrayRef<float> Out) {
  for (size_t I = 0; I < Act.size(); ++I)
    Out[I] =
        Act[I] == 0 ? 0.f : Act[I] * Scale * dotRow(Readout.data(), Down, I);
}

} // namespace vindex
