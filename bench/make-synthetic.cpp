//===- make-synthetic.cpp - A checkpoint with Gemma 3 4B's shapes ---------===//
//
// Writes a Hugging Face checkpoint directory (config.json, sharded bf16
// safetensors with an index) with the text shapes of Gemma 3 4B and
// deterministic pseudo-random weights, for benchmarks on a machine without
// the real model. --layers N makes a smaller one for small disks.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Safetensors.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> OutDir("o", cl::Required,
                                   cl::desc("Output checkpoint directory"));
static cl::opt<unsigned> Layers("layers", cl::init(34),
                                cl::desc("Decoder layers (Gemma 3 4B: 34)"));
static cl::opt<unsigned>
    Shards("shards", cl::init(0),
           cl::desc("Shards (default: about 1.6 GB each)"));
static cl::opt<uint64_t> Seed("seed", cl::init(1), cl::desc("PRNG seed"));

namespace {
constexpr uint64_t Hidden = 2560, FFN = 10240, Vocab = 262144, Heads = 8,
                   KVHeads = 4, HeadDim = 256;

/// bf16 values of N(0, 0.02)-like magnitude, indexed by 16 random bits.
struct ValueTable {
  uint16_t V[65536];
  ValueTable() {
    for (unsigned I = 0; I < 65536; ++I) {
      // Inverse-CDF-free shape: a sum of two uniforms is triangular, close
      // enough to a bell for throughput measurements.
      double U1 = ((I & 0xff) + 0.5) / 256.0, U2 = ((I >> 8) + 0.5) / 256.0;
      float F = float((U1 + U2 - 1.0) * 0.04);
      uint32_t Bits;
      std::memcpy(&Bits, &F, 4);
      V[I] = uint16_t(Bits >> 16);
    }
  }
};

struct Rng {
  uint64_t S;
  uint64_t next() {
    S += 0x9e3779b97f4a7c15ull;
    uint64_t Z = S;
    Z = (Z ^ (Z >> 30)) * 0xbf58476d1ce4e5b9ull;
    Z = (Z ^ (Z >> 27)) * 0x94d049bb133111ebull;
    return Z ^ (Z >> 31);
  }
};

std::vector<SafetensorsWriter::Tensor> allTensors() {
  std::vector<SafetensorsWriter::Tensor> T;
  auto Add = [&](std::string Name, Shape S) {
    T.push_back({std::move(Name), DType::BF16, std::move(S)});
  };
  Add("model.embed_tokens.weight", {Vocab, Hidden});
  for (unsigned L = 0; L < Layers; ++L) {
    std::string P = formatv("model.layers.{0}.", L).str();
    Add(P + "input_layernorm.weight", {Hidden});
    Add(P + "mlp.down_proj.weight", {Hidden, FFN});
    Add(P + "mlp.gate_proj.weight", {FFN, Hidden});
    Add(P + "mlp.up_proj.weight", {FFN, Hidden});
    Add(P + "post_attention_layernorm.weight", {Hidden});
    Add(P + "post_feedforward_layernorm.weight", {Hidden});
    Add(P + "pre_feedforward_layernorm.weight", {Hidden});
    Add(P + "self_attn.k_norm.weight", {HeadDim});
    Add(P + "self_attn.k_proj.weight", {KVHeads * HeadDim, Hidden});
    Add(P + "self_attn.o_proj.weight", {Hidden, Heads * HeadDim});
    Add(P + "self_attn.q_norm.weight", {HeadDim});
    Add(P + "self_attn.q_proj.weight", {Heads * HeadDim, Hidden});
    Add(P + "self_attn.v_proj.weight", {KVHeads * HeadDim, Hidden});
  }
  Add("model.norm.weight", {Hidden});
  return T;
}

std::string configJson() {
  json::Array Types;
  for (unsigned L = 0; L < Layers; ++L)
    Types.push_back((L + 1) % 6 ? "sliding_attention" : "full_attention");
  json::Object C{{"architectures", json::Array{"Gemma3ForCausalLM"}},
                 {"model_type", "gemma3_text"},
                 {"hidden_size", Hidden},
                 {"intermediate_size", FFN},
                 {"num_hidden_layers", Layers.getValue()},
                 {"num_attention_heads", Heads},
                 {"num_key_value_heads", KVHeads},
                 {"head_dim", HeadDim},
                 {"vocab_size", Vocab},
                 {"hidden_activation", "gelu_pytorch_tanh"},
                 {"max_position_embeddings", 131072},
                 {"query_pre_attn_scalar", 256},
                 {"rms_norm_eps", 1e-6},
                 {"rope_theta", 1000000.0},
                 {"rope_local_base_freq", 10000.0},
                 {"sliding_window", 1024},
                 {"layer_types", std::move(Types)},
                 {"tie_word_embeddings", true},
                 {"bos_token_id", 2},
                 {"eos_token_id", 1},
                 {"pad_token_id", 0},
                 {"torch_dtype", "bfloat16"}};
  return formatv("{0:2}", json::Value(std::move(C))).str() + "\n";
}

bool writeFile(StringRef Path, StringRef Data) {
  std::error_code EC;
  raw_fd_ostream OS(Path, EC);
  if (EC)
    return false;
  OS << Data;
  return !OS.has_error();
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "synthetic Gemma-3-4B-shaped checkpoint\n");
  auto Fail = [](const Twine &Msg) {
    WithColor::error(errs(), "vindex-make-synthetic") << Msg << "\n";
    return 1;
  };
  if (std::error_code EC = sys::fs::create_directories(OutDir))
    return Fail(OutDir + ": " + EC.message());
  std::vector<SafetensorsWriter::Tensor> All = allTensors();
  uint64_t Total = 0;
  for (auto &T : All)
    Total += *numElements(T.Dims) * 2;
  unsigned NShards =
      Shards ? Shards : std::max<uint64_t>(1, Total / 1600000000);

  // Contiguous runs of tensors of about equal size per shard.
  std::vector<std::vector<SafetensorsWriter::Tensor>> Parts(NShards);
  uint64_t Acc = 0;
  for (auto &T : All) {
    unsigned S = std::min<uint64_t>(NShards - 1, Acc * NShards / Total);
    Acc += *numElements(T.Dims) * 2;
    Parts[S].push_back(T);
  }
  static ValueTable Table;
  Rng R{Seed};
  std::vector<uint16_t> Buf(1 << 20);
  json::Object WeightMap;
  for (unsigned S = 0; S < NShards; ++S) {
    std::string Name =
        formatv("model-{0:5}-of-{1:5}.safetensors", S + 1, NShards).str();
    for (auto &C : Name)
      if (C == ' ')
        C = '0';
    SmallString<256> Path(OutDir);
    sys::path::append(Path, Name);
    SafetensorsWriter W(Parts[S], {{"format", "pt"}});
    std::error_code EC;
    raw_fd_ostream OS(Path, EC);
    if (EC)
      return Fail(Path + ": " + EC.message());
    OS << W.header();
    for (size_t I = 0; I < Parts[S].size(); ++I) {
      WeightMap[Parts[S][I].Name] = Name;
      uint64_t Left = W.byteLength(I) / 2;
      while (Left) {
        size_t N = std::min<uint64_t>(Left, Buf.size());
        for (size_t J = 0; J < N; J += 4) {
          uint64_t Bits = R.next();
          for (size_t K = 0; K < 4 && J + K < N; ++K)
            Buf[J + K] = Table.V[(Bits >> (16 * K)) & 0xffff];
        }
        OS.write(reinterpret_cast<const char *>(Buf.data()), N * 2);
        Left -= N;
      }
    }
    if (OS.has_error())
      return Fail(Path + ": write failed");
  }
  json::Object Index{{"metadata", json::Object{{"total_size", Total}}},
                     {"weight_map", std::move(WeightMap)}};
  SmallString<256> P(OutDir);
  sys::path::append(P, "model.safetensors.index.json");
  if (!writeFile(P, formatv("{0:2}", json::Value(std::move(Index))).str()))
    return Fail(P + ": write failed");
  P = OutDir;
  sys::path::append(P, "config.json");
  if (!writeFile(P, configJson()))
    return Fail(P + ": write failed");
  outs() << formatv("{{\"dir\":\"{0}\",\"layers\":{1},\"shards\":{2},"
                    "\"bytes\":{3}}\n",
                    OutDir, Layers, NShards, Total);
  return 0;
}
