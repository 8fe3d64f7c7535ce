//===- HFConfig.cpp - config.json into a ModelConfig ----------------------===//
//
// Defaults follow the transformers configuration classes of each family
// (Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config),
// so a config.json that omits a field means what it means to transformers.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/ModelConfig.h"

#include "vindex/Formats/Architecture.h"

#include "vindex/Support/Error.h"
#include "vindex/Support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <cmath>

using namespace llvm;

namespace vindex {

namespace {

/// Typed access to one JSON object of config.json with located errors.
class Fields {
public:
  Fields(const json::Object &O, StringRef File, StringRef Path)
      : O(O), File(File), Path(Path) {}

  std::string where(StringRef Key) const {
    return Path.empty() ? Key.str() : (Path + "." + Key).str();
  }
  bool has(StringRef Key) const {
    const json::Value *V = O.get(Key);
    return V && V->kind() != json::Value::Null;
  }
  Error required(StringRef Key) const {
    if (!has(Key))
      return fileError(File, "missing required field '{0}'", where(Key));
    return Error::success();
  }
  Error u64(StringRef Key, uint64_t &Out) const {
    return typed(
        Key, Out, [](const json::Value &V) { return V.getAsUINT64(); },
        "a non-negative integer");
  }
  Error f64(StringRef Key, double &Out) const {
    return typed(
        Key, Out, [](const json::Value &V) { return V.getAsNumber(); },
        "a number");
  }
  Error boolean(StringRef Key, bool &Out) const {
    return typed(
        Key, Out, [](const json::Value &V) { return V.getAsBoolean(); },
        "true or false");
  }
  Error string(StringRef Key, std::string &Out) const {
    return typed(
        Key, Out, [](const json::Value &V) { return V.getAsString(); },
        "a string");
  }
  /// An id or a list of ids (eos_token_id may be either).
  Error ids(StringRef Key, SmallVectorImpl<int64_t> &Out) const {
    if (!has(Key))
      return Error::success();
    const json::Value *V = O.get(Key);
    auto Bad = [&] {
      return fileError(File,
                       "field '{0}' must be an integer or a list of "
                       "integers",
                       where(Key));
    };
    if (std::optional<int64_t> I = V->getAsInteger()) {
      Out.push_back(*I);
      return Error::success();
    }
    const json::Array *A = V->getAsArray();
    if (!A)
      return Bad();
    for (const json::Value &E : *A) {
      std::optional<int64_t> I = E.getAsInteger();
      if (!I)
        return Bad();
      Out.push_back(*I);
    }
    return Error::success();
  }
  Error id(StringRef Key, std::optional<int64_t> &Out) const {
    SmallVector<int64_t, 1> V;
    if (Error E = ids(Key, V))
      return E;
    if (!V.empty())
      Out = V.front();
    return Error::success();
  }
  const json::Object *object(StringRef Key) const {
    return has(Key) ? O.get(Key)->getAsObject() : nullptr;
  }
  const json::Array *array(StringRef Key) const {
    return has(Key) ? O.get(Key)->getAsArray() : nullptr;
  }

private:
  /// Out = Get(the field) where the field is there and Get reads it (an
  /// optional); Must says what the field must be where it does not.
  template <typename T, typename Getter>
  Error typed(StringRef Key, T &Out, Getter Get, StringRef Must) const {
    if (!has(Key))
      return Error::success();
    auto V = Get(*O.get(Key));
    if (!V)
      return fileError(File, "field '{0}' must be {1}", where(Key), Must);
    Out = T(*V);
    return Error::success();
  }

  const json::Object &O;
  StringRef File;
  std::string Path;
};

Error parseActivation(StringRef File, StringRef Name, Activation &Out) {
  if (Name == "silu" || Name == "swish")
    Out = Activation::SiLU;
  else if (Name == "gelu_pytorch_tanh" || Name == "gelu_new" ||
           Name == "gelu_fast")
    Out = Activation::GeluTanh;
  else if (Name == "gelu")
    Out = Activation::Gelu;
  else
    return fileError(File,
                     "unsupported activation '{0}' (supported: silu, "
                     "gelu, gelu_pytorch_tanh)",
                     Name);
  return Error::success();
}

Error parseRopeScaling(const Fields &F, StringRef File, RopeScaling &Out) {
  if (!F.has("rope_scaling"))
    return Error::success();
  const json::Object *RS = F.object("rope_scaling");
  if (!RS)
    return fileError(File, "field '{0}' must be an object",
                     F.where("rope_scaling"));
  Fields S(*RS, File, F.where("rope_scaling"));
  if (Error E = S.string("rope_type", Out.Type))
    return E;
  if (Out.Type.empty())
    if (Error E = S.string("type", Out.Type))
      return E;
  if (Error E = S.f64("factor", Out.Factor))
    return E;
  if (Error E = S.f64("low_freq_factor", Out.LowFreqFactor))
    return E;
  if (Error E = S.f64("high_freq_factor", Out.HighFreqFactor))
    return E;
  if (Error E = S.u64("original_max_position_embeddings",
                      Out.OriginalMaxPositions))
    return E;
  // What each scaling needs: a missing value must not silently become 0.
  SmallVector<StringRef, 4> Needed;
  if (Out.Type == "linear")
    Needed = {"factor"};
  else if (Out.Type == "llama3")
    Needed = {"factor", "low_freq_factor", "high_freq_factor",
              "original_max_position_embeddings"};
  for (StringRef Key : Needed)
    if (!S.has(Key))
      return fileError(File, "missing required field '{0}' (rope_type {1})",
                       S.where(Key), Out.Type);
  if (!Needed.empty() && !(Out.Factor > 0))
    return fileError(File, "field '{0}' must be positive", S.where("factor"));
  if (Out.Type == "llama3" &&
      !(Out.LowFreqFactor > 0 && Out.HighFreqFactor > Out.LowFreqFactor &&
        Out.OriginalMaxPositions > 0))
    return fileError(File,
                     "field '{0}' needs 0 < low_freq_factor < "
                     "high_freq_factor and original_max_position_embeddings "
                     "> 0",
                     F.where("rope_scaling"));
  return Error::success();
}

Error parseLayerKinds(const Fields &F, StringRef File, ModelConfig &C,
                      WindowStyle Window) {
  C.LayerKinds.assign(C.NumLayers, LayerKind::Full);
  if (const json::Array *Types = F.array("layer_types")) {
    if (Types->size() != C.NumLayers)
      return fileError(File,
                       "field '{0}' has {1} entries but there are {2} "
                       "layers",
                       F.where("layer_types"), Types->size(), C.NumLayers);
    for (size_t I = 0; I < Types->size(); ++I) {
      std::optional<StringRef> T = (*Types)[I].getAsString();
      if (T == "full_attention")
        C.LayerKinds[I] = LayerKind::Full;
      else if (T == "sliding_attention")
        C.LayerKinds[I] = LayerKind::Sliding;
      else
        return fileError(File,
                         "field '{0}[{1}]' must be 'full_attention' "
                         "or 'sliding_attention'",
                         F.where("layer_types"), I);
    }
    return Error::success();
  }
  if (Window == WindowStyle::Interleaved) {
    // Older Gemma 3 configs give a pattern: every Nth layer is global.
    uint64_t Pattern = 6;
    if (Error E = F.u64("sliding_window_pattern", Pattern))
      return E;
    for (uint64_t I = 0; I < C.NumLayers; ++I)
      C.LayerKinds[I] =
          Pattern && (I + 1) % Pattern ? LayerKind::Sliding : LayerKind::Full;
    return Error::success();
  }
  // Mistral: a sliding window applies to every layer; Qwen 2 only with
  // use_sliding_window (and then to layers from max_window_layers on).
  if (C.SlidingWindow == 0)
    return Error::success();
  bool UseSliding = Window == WindowStyle::AllLayers;
  uint64_t FirstSliding = 0;
  if (Window == WindowStyle::OptIn) {
    if (Error E = F.boolean("use_sliding_window", UseSliding))
      return E;
    if (Error E = F.u64("max_window_layers", FirstSliding))
      return E;
  }
  if (!UseSliding) {
    C.SlidingWindow = 0;
    return Error::success();
  }
  for (uint64_t I = FirstSliding; I < C.NumLayers; ++I)
    C.LayerKinds[I] = LayerKind::Sliding;
  return Error::success();
}

/// The sizes: widths, layers, heads, vocabulary (checked before anything
/// is sized by them).
Error parseSizes(const Fields &F, StringRef File, const ArchitectureInfo &D,
                 ModelConfig &C) {
  if (D.Gemma) {
    // Gemma3TextConfig has defaults for every size (those of the 2B-class
    // model), and real multimodal configs rely on them: gemma-3-4b's
    // text_config omits the head counts and the vocabulary size.
    C.HiddenSize = 2304;
    C.IntermediateSize = 9216;
    C.NumLayers = 26;
    C.NumHeads = 8;
    C.VocabSize = 262208;
  } else {
    for (StringRef Key :
         {"hidden_size", "intermediate_size", "num_hidden_layers",
          "num_attention_heads", "vocab_size"})
      if (Error E = F.required(Key))
        return E;
  }
  if (Error E = F.u64("hidden_size", C.HiddenSize))
    return E;
  if (Error E = F.u64("intermediate_size", C.IntermediateSize))
    return E;
  if (Error E = F.u64("num_hidden_layers", C.NumLayers))
    return E;
  if (Error E = F.u64("num_attention_heads", C.NumHeads))
    return E;
  if (Error E = F.u64("vocab_size", C.VocabSize))
    return E;
  C.NumKVHeads = D.Gemma ? 4 : C.NumHeads;
  if (Error E = F.u64("num_key_value_heads", C.NumKVHeads))
    return E;
  // No division by 0 heads: checkModelConfig refuses them just below.
  C.HeadDim = D.Gemma ? 256 : C.HiddenSize / std::max<uint64_t>(C.NumHeads, 1);
  if (Error E = F.u64("head_dim", C.HeadDim))
    return E;
  // Before anything is sized by these (the layer kinds).
  return checkModelConfig(C, File);
}

/// Positions: the context length and RoPE's bases and scaling.
Error parsePositions(const Fields &F, StringRef File, const ArchitectureInfo &D,
                     ModelConfig &C) {
  if (Error E = F.u64("max_position_embeddings", C.MaxPositions))
    return E;

  C.RopeTheta = D.RopeTheta;
  if (Error E = F.f64("rope_theta", C.RopeTheta))
    return E;
  C.RopeLocalTheta = D.Gemma ? 10000.0 : C.RopeTheta;
  if (Error E = F.f64("rope_local_base_freq", C.RopeLocalTheta))
    return E;
  if (Error E = parseRopeScaling(F, File, C.Scaling))
    return E;
  C.NormEps = 1e-6;
  if (Error E = F.f64("rms_norm_eps", C.NormEps))
    return E;
  return Error::success();
}

/// The FFN activation and the sliding windows of the layers.
Error parseActivationAndWindows(const Fields &F, StringRef File,
                                const ArchitectureInfo &D, ModelConfig &C) {
  std::string Act = D.Gemma ? "gelu_pytorch_tanh" : "silu";
  if (Error E = F.string(D.Gemma ? "hidden_activation" : "hidden_act", Act))
    return E;
  if (Error E = parseActivation(File, Act, C.Act))
    return E;

  if (D.Window != WindowStyle::None) {
    C.SlidingWindow = D.Gemma ? 4096 : 0;
    if (Error E = F.u64("sliding_window", C.SlidingWindow))
      return E;
  }
  return parseLayerKinds(F, File, C, D.Window);
}

/// Embedding tying, biases, norms, scales, softcaps and the special ids.
Error parseEmbeddingNormsAndIds(const Fields &F, const ArchitectureInfo &D,
                                ModelConfig &C) {
  C.TiedEmbeddings = D.Tied;
  if (Error E = F.boolean("tie_word_embeddings", C.TiedEmbeddings))
    return E;
  C.AttentionBias = D.QKVBias;
  if (!D.QKVBias)
    if (Error E = F.boolean("attention_bias", C.AttentionBias))
      return E;
  C.QKNorm = D.QKNorm;
  C.PostNorms = D.Gemma;
  C.Norm = D.Gemma ? NormStyle::OnePlusWeight : NormStyle::Weight;
  C.EmbeddingScale = D.Gemma ? std::sqrt(double(C.HiddenSize)) : 1.0;
  double QueryPreAttn = D.Gemma ? 256.0 : double(C.HeadDim);
  if (D.Gemma)
    if (Error E = F.f64("query_pre_attn_scalar", QueryPreAttn))
      return E;
  C.QueryScale = 1.0 / std::sqrt(QueryPreAttn);
  if (Error E = F.f64("attn_logit_softcapping", C.AttnSoftcap))
    return E;
  if (Error E = F.f64("final_logit_softcapping", C.FinalSoftcap))
    return E;
  if (Error E = F.id("bos_token_id", C.BosId))
    return E;
  if (Error E = F.ids("eos_token_id", C.EosIds))
    return E;
  return F.id("pad_token_id", C.PadId);
}

Error parseTextConfig(const Fields &F, StringRef File, ModelConfig &C) {
  const ArchitectureInfo &D = *findArchitecture(C.Architecture);
  if (Error E = parseSizes(F, File, D, C))
    return E;
  if (Error E = parsePositions(F, File, D, C))
    return E;
  if (Error E = parseActivationAndWindows(F, File, D, C))
    return E;
  return parseEmbeddingNormsAndIds(F, D, C);
}

} // namespace

Expected<ModelConfig> parseHFConfig(StringRef Text, StringRef File) {
  Expected<json::Value> Root = parseJSON(Text);
  if (!Root)
    return fileError(File, "not valid JSON: {0}", toString(Root.takeError()));
  const json::Object *Obj = Root->getAsObject();
  if (!Obj)
    return fileError(File, "must be a JSON object");
  Fields Top(*Obj, File, "");
  if (Error E = Top.required("model_type"))
    return std::move(E);
  ModelConfig C;
  if (Error E = Top.string("model_type", C.SourceModelType))
    return std::move(E);
  if (!is_contained(supportedModelTypes(), StringRef(C.SourceModelType))) {
    std::string List;
    for (StringRef T : supportedModelTypes())
      List += (List.empty() ? "" : ", ") + T.str();
    return fileError(File, "unknown architecture '{0}' (supported: {1})",
                     C.SourceModelType, List);
  }
  const ArchitectureWrapper *Wrapper =
      findArchitectureWrapper(C.SourceModelType);
  if (!Wrapper) {
    C.Architecture = C.SourceModelType;
    if (Error E = parseTextConfig(Top, File, C))
      return std::move(E);
    return C;
  }
  // Multimodal Gemma 3: the language model is described by text_config and
  // its tensors live under "language_model."; the vision tower is ignored.
  const json::Object *TextObj = Top.object(Wrapper->ConfigKey);
  if (!TextObj)
    return fileError(File, "missing required field '{0}' (model_type {1})",
                     Wrapper->ConfigKey, C.SourceModelType);
  C.Architecture = Wrapper->Text->ModelType.str();
  C.TensorPrefix = Wrapper->TensorPrefix.str();
  Fields TextFields(*TextObj, File, Wrapper->ConfigKey);
  if (Error E = parseTextConfig(TextFields, File, C))
    return std::move(E);
  // Special ids may sit at the top level of the multimodal config.
  if (!C.BosId)
    if (Error E = Top.id("bos_token_id", C.BosId))
      return std::move(E);
  if (C.EosIds.empty())
    if (Error E = Top.ids("eos_token_id", C.EosIds))
      return std::move(E);
  if (!C.PadId)
    if (Error E = Top.id("pad_token_id", C.PadId))
      return std::move(E);
  return C;
}

} // namespace vindex

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace vindex {

namespace {

StringRef activationName(const ModelConfig &C) {
  switch (C.Act) {
  case Activation::SiLU:
    return "silu";
  case Activation::GeluTanh:
    return "gelu_pytorch_tanh";
  case Activation::Gelu:
    return "gelu";
  }
  return "silu";
}

StringRef causalLMClass(StringRef Arch) {
  if (Arch == "gemma3_text")
    return "Gemma3ForCausalLM";
  if (Arch == "mistral")
    return "MistralForCausalLM";
  if (Arch == "qwen2")
    return "Qwen2ForCausalLM";
  if (Arch == "qwen3")
    return "Qwen3ForCausalLM";
  return "LlamaForCausalLM";
}

json::Value ids(ArrayRef<int64_t> Ids) {
  if (Ids.size() == 1)
    return Ids.front();
  return json::Array(Ids);
}

/// Sets every key parseTextConfig reads so that it reads back C.
void writeTextConfig(const ModelConfig &C, json::Object &O) {
  bool Gemma = C.Architecture == "gemma3_text";
  O["model_type"] = C.Architecture;
  if (!O.get("architectures"))
    O["architectures"] = json::Array{causalLMClass(C.Architecture)};
  O["hidden_size"] = C.HiddenSize;
  O["intermediate_size"] = C.IntermediateSize;
  O["num_hidden_layers"] = C.NumLayers;
  O["num_attention_heads"] = C.NumHeads;
  O["num_key_value_heads"] = C.NumKVHeads;
  O["head_dim"] = C.HeadDim;
  O["vocab_size"] = C.VocabSize;
  if (C.MaxPositions)
    O["max_position_embeddings"] = C.MaxPositions;
  O["rope_theta"] = C.RopeTheta;
  if (Gemma)
    O["rope_local_base_freq"] = C.RopeLocalTheta;
  if (C.Scaling.Type.empty()) {
    O["rope_scaling"] = nullptr;
  } else {
    json::Object S{{"rope_type", C.Scaling.Type}, {"factor", C.Scaling.Factor}};
    if (C.Scaling.Type == "llama3") {
      S["low_freq_factor"] = C.Scaling.LowFreqFactor;
      S["high_freq_factor"] = C.Scaling.HighFreqFactor;
      S["original_max_position_embeddings"] = C.Scaling.OriginalMaxPositions;
    }
    O["rope_scaling"] = std::move(S);
  }
  O["rms_norm_eps"] = C.NormEps;
  O[Gemma ? "hidden_activation" : "hidden_act"] = activationName(C);
  // Layer kinds: Gemma lists them; the others slide from a first layer on.
  bool AnySliding = is_contained(C.LayerKinds, LayerKind::Sliding);
  if (Gemma) {
    json::Array Types;
    for (LayerKind K : C.LayerKinds)
      Types.push_back(K == LayerKind::Sliding ? "sliding_attention"
                                              : "full_attention");
    O["layer_types"] = std::move(Types);
    O["sliding_window"] = C.SlidingWindow;
  } else if (AnySliding) {
    O["sliding_window"] = C.SlidingWindow;
    if (C.Architecture == "qwen2" || C.Architecture == "qwen3") {
      O["use_sliding_window"] = true;
      O["max_window_layers"] = uint64_t(find(C.LayerKinds, LayerKind::Sliding) -
                                        C.LayerKinds.begin());
    }
  } else if (O.get("sliding_window")) {
    O["sliding_window"] = nullptr;
  }
  if (!Gemma && !AnySliding)
    O.erase("layer_types");
  O["tie_word_embeddings"] = C.TiedEmbeddings;
  if (C.Architecture != "qwen2")
    O["attention_bias"] = C.AttentionBias;
  if (Gemma) {
    // Written as the whole number it was, so that it reads back exactly;
    // one past 2^53 (no int64_t, or not exactly one) stays a double.
    double Q = 1.0 / (C.QueryScale * C.QueryScale), R = std::round(Q);
    if (R <= 0x1p53 && std::fabs(Q - R) <= 1e-9 * R &&
        1.0 / std::sqrt(R) == C.QueryScale)
      O["query_pre_attn_scalar"] = int64_t(R);
    else
      O["query_pre_attn_scalar"] = Q;
  }
  O["attn_logit_softcapping"] =
      C.AttnSoftcap ? json::Value(C.AttnSoftcap) : json::Value(nullptr);
  O["final_logit_softcapping"] =
      C.FinalSoftcap ? json::Value(C.FinalSoftcap) : json::Value(nullptr);
  O["bos_token_id"] = C.BosId ? json::Value(*C.BosId) : json::Value(nullptr);
  O["eos_token_id"] = C.EosIds.empty() ? json::Value(nullptr) : ids(C.EosIds);
  O["pad_token_id"] = C.PadId ? json::Value(*C.PadId) : json::Value(nullptr);
}

} // namespace

Expected<std::string> writeHFConfig(const ModelConfig &C, StringRef Original,
                                    StringRef File) {
  json::Object O;
  if (!Original.empty()) {
    Expected<json::Value> Root = parseJSON(Original);
    if (!Root)
      return fileError(File, "not valid JSON: {0}", toString(Root.takeError()));
    json::Object *Top = Root->getAsObject();
    if (!Top)
      return fileError(File, "must be a JSON object");
    O = *Top;
    // A multimodal source: the text model is what a V-index holds.
    if (json::Object *Text = Top->getObject("text_config");
        Text && C.SourceModelType == "gemma3") {
      O = *Text;
      O.erase("architectures");
      for (StringRef Key : {"torch_dtype", "transformers_version"})
        if (const json::Value *V = Top->get(Key); V && !O.get(Key))
          O[Key] = *V;
    }
  }
  writeTextConfig(C, O);
  return formatv("{0:2}", json::Value(std::move(O))).str() + "\n";
}

} // namespace vindex
