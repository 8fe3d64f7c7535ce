//===- Checkpoint.cpp - Resolve and validate a Hugging Face checkpoint ----===//
#include "vindex/Formats/Checkpoint.h"

#include "vindex/Formats/TensorRole.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace llvm;

namespace vindex {

ArrayRef<StringRef> auxiliaryFileNames() {
  static const StringRef Names[] = {"tokenizer.json",
                                    "tokenizer.model",
                                    "tokenizer_config.json",
                                    "special_tokens_map.json",
                                    "added_tokens.json",
                                    "vocab.json",
                                    "merges.txt",
                                    "generation_config.json",
                                    "chat_template.jinja",
                                    "chat_template.json"};
  return Names;
}

static std::string join(StringRef Dir, StringRef Name) {
  SmallString<256> P(Dir);
  sys::path::append(P, Name);
  return P.str().str();
}

static Expected<std::string> readText(StringRef Path) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf =
      MemoryBuffer::getFile(Path, /*IsText=*/false,
                            /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(Path, "cannot read: {0}", Buf.getError().message());
  return (*Buf)->getBuffer().str();
}

std::string Checkpoint::configPath() const { return join(Dir, "config.json"); }

Expected<std::unique_ptr<Checkpoint>> Checkpoint::open(StringRef Input) {
  std::unique_ptr<Checkpoint> C(new Checkpoint());
  if (Error E = C->load(Input))
    return std::move(E);
  return std::move(C);
}

Error Checkpoint::load(StringRef Input) {
  if (!sys::fs::exists(Input))
    return fileError(Input, "no such file or directory");
  std::vector<std::string> Files;
  if (sys::fs::is_directory(Input)) {
    Dir = Input.str();
    std::string Index = join(Dir, "model.safetensors.index.json");
    std::string Single = join(Dir, "model.safetensors");
    if (sys::fs::exists(Index))
      IndexPath = Index;
    else if (sys::fs::exists(Single))
      Files.push_back(Single);
    else
      return fileError(Input, "no model.safetensors or "
                              "model.safetensors.index.json in this "
                              "directory");
  } else {
    Dir = sys::path::parent_path(Input).str();
    if (Dir.empty())
      Dir = ".";
    if (Input.ends_with(".json"))
      IndexPath = Input.str();
    else if (Input.ends_with(".safetensors"))
      Files.push_back(Input.str());
    else
      return fileError(Input, "unrecognised input (expected a checkpoint "
                              "directory, a .safetensors file or a "
                              "model.safetensors.index.json)");
  }

  std::string ConfigFile = configPath();
  if (!sys::fs::exists(ConfigFile))
    return fileError(ConfigFile, "no such file (a checkpoint needs its "
                                 "config.json)");
  Expected<std::string> Text = readText(ConfigFile);
  if (!Text)
    return Text.takeError();
  ConfigText = std::move(*Text);
  Expected<ModelConfig> Parsed = parseHFConfig(ConfigText, ConfigFile);
  if (!Parsed)
    return Parsed.takeError();
  Config = std::move(*Parsed);

  if (!IndexPath.empty()) {
    if (Error E = loadIndex(IndexPath))
      return E;
  } else if (Error E = loadShards(Files)) {
    return E;
  }
  if (Error E = collectTensors())
    return E;
  for (StringRef Name : auxiliaryFileNames())
    if (sys::fs::is_regular_file(join(Dir, Name)))
      AuxFiles.push_back(join(Dir, Name));
  return Error::success();
}

Error Checkpoint::loadShards(ArrayRef<std::string> Files) {
  for (const std::string &F : Files) {
    Expected<std::unique_ptr<SafetensorsFile>> ST = SafetensorsFile::open(F);
    if (!ST)
      return ST.takeError();
    Shards.push_back(std::move(*ST));
  }
  return Error::success();
}

// A shard name from an index must stay inside the checkpoint directory.
static bool isPlainFileName(StringRef Name) {
  return !Name.empty() && Name != "." && Name != ".." &&
         Name.find_first_of("/\\") == StringRef::npos;
}

Error Checkpoint::loadIndex(StringRef Path) {
  Expected<std::string> Text = readText(Path);
  if (!Text)
    return Text.takeError();
  Expected<json::Value> Root = parseJSON(*Text);
  if (!Root)
    return fileError(Path, "not valid JSON: {0}", toString(Root.takeError()));
  const json::Object *Obj = Root->getAsObject();
  const json::Object *Map = Obj ? Obj->getObject("weight_map") : nullptr;
  if (!Map)
    return fileError(Path, "missing 'weight_map' object");
  if (const json::Object *Meta = Obj->getObject("metadata")) {
    for (const auto &KV : *Meta)
      IndexMeta.emplace_back(KV.first.str(), formatv("{0}", KV.second).str());
    llvm::sort(IndexMeta);
  }
  // Shards in name order: model-00001-of-00003 first.
  std::vector<std::string> ShardNames;
  StringMap<std::string> TensorToShard;
  for (const auto &KV : *Map) {
    std::optional<StringRef> File = KV.second.getAsString();
    if (!File || !isPlainFileName(*File))
      return fileError(Path,
                       "weight_map entry '{0}' must name a file in "
                       "the checkpoint directory",
                       KV.first.str());
    TensorToShard[KV.first.str()] = File->str();
    if (!is_contained(ShardNames, *File))
      ShardNames.push_back(File->str());
  }
  llvm::sort(ShardNames);
  std::vector<std::string> Files;
  for (const std::string &Name : ShardNames) {
    std::string File = join(Dir, Name);
    if (!sys::fs::exists(File)) {
      std::string Example;
      for (const auto &KV : TensorToShard)
        if (KV.second == Name && (Example.empty() || KV.first() < Example))
          Example = KV.first().str();
      return fileError(Path,
                       "shard '{0}' (holding tensor '{1}') does not "
                       "exist",
                       Name, Example);
    }
    Files.push_back(File);
  }
  if (Error E = loadShards(Files))
    return E;
  // The index and the shards must agree exactly.
  for (size_t I = 0; I < Shards.size(); ++I) {
    for (const SafetensorsEntry &E : Shards[I]->entries()) {
      auto It = TensorToShard.find(E.Name);
      if (It == TensorToShard.end())
        return fileError(Path,
                         "tensor '{0}' of shard '{1}' is not in "
                         "weight_map",
                         E.Name, ShardNames[I]);
      if (It->second != ShardNames[I])
        return fileError(Path,
                         "tensor '{0}' is mapped to shard '{1}' but "
                         "found in shard '{2}'",
                         E.Name, It->second, ShardNames[I]);
      IndexMap[E.Name] = I;
    }
  }
  for (const auto &KV : TensorToShard)
    if (!IndexMap.count(KV.first()))
      return fileError(Path,
                       "tensor '{0}' is mapped to shard '{1}' but not "
                       "found in it",
                       KV.first(), KV.second);
  return Error::success();
}

// The text model's name of a tensor, or "" when it belongs to something else
// (a multimodal checkpoint's vision tower).
static std::string textModelName(StringRef Name, StringRef Prefix) {
  if (Prefix.empty())
    return Name.str();
  if (Name.consume_front(Prefix))
    return Name.str();
  // transformers >= 4.52 spells the same tensors "model.language_model.*".
  if (Name.consume_front("model.language_model."))
    return ("model." + Name).str();
  if (Name == hfTensorName(TensorRole::LMHead, -1))
    return Name.str();
  return "";
}

Error Checkpoint::collectTensors() {
  StringSet<> Seen;
  for (size_t I = 0; I < Shards.size(); ++I) {
    for (const SafetensorsEntry &E : Shards[I]->entries()) {
      std::string Name = textModelName(E.Name, Config.TensorPrefix);
      if (Name.empty()) {
        ++Skipped;
        continue;
      }
      if (!Seen.insert(Name).second)
        return fileError(Shards[I]->path(),
                         "tensor '{0}' appears in more "
                         "than one shard",
                         Name);
      Tensors.push_back({Name, I, &E});
    }
  }
  if (Tensors.empty())
    return fileError(Dir, "the checkpoint has no tensors");
  return Error::success();
}

std::vector<std::string> Checkpoint::inputFiles() const {
  std::vector<std::string> Files{configPath()};
  if (!IndexPath.empty())
    Files.push_back(IndexPath);
  for (const auto &S : Shards)
    Files.push_back(S->path().str());
  Files.insert(Files.end(), AuxFiles.begin(), AuxFiles.end());
  return Files;
}

} // namespace vindex
