//===- Rope.cpp - RoPE frequencies and the llama3 scaling -----------------===//
#include "vindex/Formats/Rope.h"

#include "vindex/Formats/Architecture.h"
#include "vindex/Support/Error.h"

#include <algorithm>
#include <cmath>

using namespace llvm;

namespace vindex {

namespace {

/// The unscaled frequency of rotated pair I: 1 / base^(2I / d), in f32 as
/// transformers and llama.cpp's converter compute it.
float baseFrequency(double Base, uint64_t I, uint64_t HeadDim) {
  return 1.0f / powf(float(Base), float(2 * I) / float(HeadDim));
}

/// What a llama3 RoPE scaling divides the frequency Freq of a rotated pair
/// by: 1 for wavelengths shorter than original / high_freq_factor, factor
/// for those longer than original / low_freq_factor, and between the two
/// 1 / ((1 - s) / factor + s), s = (original / wavelength - low) / (high -
/// low). Every step is computed in Real, so that each caller matches its
/// reference to the bit (f32 for llama.cpp's converter).
template <typename Real> Real llama3Divisor(Real Freq, const RopeScaling &S) {
  Real Wave = Real(2 * M_PI) / Freq;
  if (Wave < Real(double(S.OriginalMaxPositions) / S.HighFreqFactor))
    return 1;
  Real Factor = Real(S.Factor);
  if (Wave > Real(double(S.OriginalMaxPositions) / S.LowFreqFactor))
    return Factor;
  Real Smooth = (Real(S.OriginalMaxPositions) / Wave - Real(S.LowFreqFactor)) /
                Real(S.HighFreqFactor - S.LowFreqFactor);
  return 1 / ((1 - Smooth) / Factor + Smooth);
}

} // namespace

Expected<std::vector<float>> ropeInverseFrequencies(const ModelConfig &C,
                                                    bool Sliding) {
  double Base = Sliding ? C.RopeLocalTheta : C.RopeTheta;
  std::vector<float> Inv(C.HeadDim / 2);
  for (size_t I = 0; I < Inv.size(); ++I)
    Inv[I] = baseFrequency(Base, I, C.HeadDim);
  // Gemma 3 scales only its global layers; the local ones use the default.
  const ArchitectureInfo *A = findArchitecture(C.Architecture);
  bool Scaled = !C.Scaling.Type.empty() && C.Scaling.Type != "default" &&
                !(Sliding && A && A->Gemma);
  if (!Scaled)
    return Inv;
  const RopeScaling &S = C.Scaling;
  if (S.Type == "linear") {
    for (float &F : Inv)
      F /= float(S.Factor);
    return Inv;
  }
  if (S.Type == "llama3") {
    for (float &F : Inv)
      F = float(F / llama3Divisor<double>(F, S));
    return Inv;
  }
  return makeError("RoPE scaling '{0}' is not supported by the engine "
                   "(supported: linear, llama3)",
                   S.Type);
}

std::vector<float> llama3RopeFactors(double Base, uint64_t HeadDim,
                                     const RopeScaling &S) {
  // convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors) computes on
  // f32 tensors: every step rounds to f32 as torch does.
  std::vector<float> Out(HeadDim / 2);
  for (size_t I = 0; I < Out.size(); ++I)
    Out[I] = llama3Divisor<float>(baseFrequency(Base, I, HeadDim), S);
  return Out;
}
std::optional<RopeScaling>
llama3ScalingFromFactors(ArrayRef<float> F, double Base, uint64_t HeadDim) {
  if (F.empty() || F.size() != HeadDim / 2)
    return std::nullopt;
  RopeScaling S;
  S.Type = "llama3";
  S.Factor = *std::max_element(F.begin(), F.end());
  S.LowFreqFactor = 1.0;
  // Llama 3's own values, for factors that do not determine them.
  S.HighFreqFactor = 4.0;
  S.OriginalMaxPositions = 8192;
  // Between the two wavelengths the factor is 1 / ((1 - s) / factor + s)
  // with s = (old / wavelength - low) / (high - low): linear in
  // 1 / wavelength. Two such points give old and high (low being 1).
  std::vector<std::pair<double, double>> Points; // (1 / wavelength, s)
  for (size_t I = 0; I < F.size(); ++I) {
    if (F[I] == 1.0f || F[I] == float(S.Factor))
      continue;
    double Freq = 1.0 / std::pow(Base, double(2 * I) / double(HeadDim));
    double Inv = 1.0 / S.Factor;
    Points.push_back({Freq / (2 * M_PI), (1.0 / F[I] - Inv) / (1.0 - Inv)});
  }
  if (Points.size() >= 2) {
    auto [X0, Y0] = Points.front();
    auto [X1, Y1] = Points.back();
    double Alpha = (Y1 - Y0) / (X1 - X0), Beta = Y0 - Alpha * X0;
    if (Beta < 0 && Alpha > 0) {
      // Beta = -low / (high - low), Alpha = old / (high - low).
      double Span = -1.0 / Beta;
      S.HighFreqFactor = std::round((1.0 + Span) * 1e4) / 1e4;
      S.OriginalMaxPositions = uint64_t(std::llround(Alpha * Span));
    }
  }
  std::vector<float> Again = llama3RopeFactors(Base, HeadDim, S);
  if (!std::equal(Again.begin(), Again.end(), F.begin(), F.end()))
    return std::nullopt;
  return S;
}

} // namespace vindex
