//===- llama-answers.cpp - Greedy answers of a GGUF in llama.cpp ----------===//
//
// llama-answers MODEL.gguf [MAX_NEW] < prompts.tsv > answers.jsonl
//
// The independent check of a compiled model: llama.cpp (built outside this
// repository, see utils/llama-answers/build.sh) loads the GGUF and, for each
// input line `prompt<TAB>target`, prints one JSON line with
//   - "match": the greedy continuation of the prompt begins with every token
//     of " target" (the target's ids are those that tokenizing
//     "prompt target" adds after the prompt's own, as bench/edit-eval does);
//   - "p_first": the probability of the target's first token after the
//     prompt, "top1" and "p_top1": the argmax token's text and probability;
//   - "generated": the text of MAX_NEW (default 8) greedy tokens.
// A line without a tab is a prompt alone ("match" and "p_first" are null).
//
// Plain C++17 against llama.h only: it is not part of the Vindex build, and
// no test needs it.
//
//===----------------------------------------------------------------------===//
#include "llama.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {

std::vector<llama_token> tokenize(const llama_vocab *Vocab,
                                  const std::string &Text, bool AddSpecial) {
  int32_t N = -llama_tokenize(Vocab, Text.data(), int32_t(Text.size()), nullptr,
                              0, AddSpecial, false);
  std::vector<llama_token> Ids(N);
  if (llama_tokenize(Vocab, Text.data(), int32_t(Text.size()), Ids.data(), N,
                     AddSpecial, false) != N)
    Ids.clear();
  return Ids;
}

std::string piece(const llama_vocab *Vocab, llama_token Id) {
  char Buf[256];
  int32_t N = llama_token_to_piece(Vocab, Id, Buf, sizeof(Buf), 0, false);
  return N > 0 ? std::string(Buf, size_t(N)) : std::string();
}

std::string jsonString(const std::string &S) {
  std::string Out = "\"";
  for (unsigned char C : S) {
    if (C == '"' || C == '\\') {
      Out += '\\';
      Out += char(C);
    } else if (C < 0x20) {
      char Esc[8];
      std::snprintf(Esc, sizeof(Esc), "\\u%04x", C);
      Out += Esc;
    } else {
      Out += char(C);
    }
  }
  return Out + "\"";
}

/// Softmax probabilities of the logits (in place of a sampler: greedy only).
std::vector<double> softmax(const float *Logits, int32_t N) {
  double Max = Logits[0];
  for (int32_t I = 1; I < N; ++I)
    Max = std::max(Max, double(Logits[I]));
  std::vector<double> P(N);
  double Sum = 0;
  for (int32_t I = 0; I < N; ++I)
    Sum += P[I] = std::exp(double(Logits[I]) - Max);
  for (double &X : P)
    X /= Sum;
  return P;
}

void quiet(ggml_log_level Level, const char *Text, void *) {
  if (Level == GGML_LOG_LEVEL_ERROR)
    std::fputs(Text, stderr);
}

} // namespace

int main(int Argc, char **Argv) {
  if (Argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [MAX_NEW] < prompts.tsv\n",
                 Argv[0]);
    return 2;
  }
  int MaxNew = Argc > 2 ? std::atoi(Argv[2]) : 8;
  llama_log_set(quiet, nullptr);
  llama_backend_init();
  llama_model_params MP = llama_model_default_params();
  llama_model *Model = llama_model_load_from_file(Argv[1], MP);
  if (!Model) {
    std::fprintf(stderr, "llama-answers: cannot load %s\n", Argv[1]);
    return 1;
  }
  const llama_vocab *Vocab = llama_model_get_vocab(Model);
  int32_t NVocab = llama_vocab_n_tokens(Vocab);
  llama_context_params CP = llama_context_default_params();
  CP.n_ctx = 256;
  CP.n_batch = 256;
  CP.n_threads = CP.n_threads_batch = 1;
  CP.no_perf = true;
  llama_context *Ctx = llama_init_from_model(Model, CP);
  if (!Ctx) {
    std::fprintf(stderr, "llama-answers: cannot make a context\n");
    return 1;
  }

  std::string Line;
  while (std::getline(std::cin, Line)) {
    size_t Tab = Line.find('\t');
    std::string Prompt = Line.substr(0, Tab);
    bool HasTarget = Tab != std::string::npos;
    std::vector<llama_token> PromptIds = tokenize(Vocab, Prompt, true);
    std::vector<llama_token> TargetIds;
    if (HasTarget) {
      std::vector<llama_token> All =
          tokenize(Vocab, Prompt + " " + Line.substr(Tab + 1), true);
      bool Prefix = All.size() > PromptIds.size();
      for (size_t I = 0; Prefix && I < PromptIds.size(); ++I)
        Prefix = All[I] == PromptIds[I];
      if (Prefix)
        TargetIds.assign(All.begin() + PromptIds.size(), All.end());
    }

    llama_memory_clear(llama_get_memory(Ctx), true);
    std::vector<llama_token> Feed = PromptIds;
    std::vector<llama_token> Generated;
    double PFirst = -1, PTop1 = 0;
    std::string Top1;
    for (int Step = 0; Step < std::max(MaxNew, int(TargetIds.size())); ++Step) {
      if (llama_decode(
              Ctx, llama_batch_get_one(Feed.data(), int32_t(Feed.size())))) {
        std::fprintf(stderr, "llama-answers: decode failed\n");
        return 1;
      }
      const float *Logits = llama_get_logits_ith(Ctx, -1);
      int32_t Best = 0;
      for (int32_t I = 1; I < NVocab; ++I)
        if (Logits[I] > Logits[Best])
          Best = I;
      if (Step == 0) {
        std::vector<double> P = softmax(Logits, NVocab);
        PTop1 = P[Best];
        Top1 = piece(Vocab, Best);
        if (!TargetIds.empty())
          PFirst = P[TargetIds[0]];
      }
      Generated.push_back(Best);
      if (llama_vocab_is_eog(Vocab, Best))
        break;
      Feed = {Best};
    }
    bool Match = !TargetIds.empty() && Generated.size() >= TargetIds.size();
    for (size_t I = 0; Match && I < TargetIds.size(); ++I)
      Match = Generated[I] == TargetIds[I];
    std::string Text;
    for (size_t I = 0; I < Generated.size() && I < size_t(MaxNew); ++I)
      Text += piece(Vocab, Generated[I]);

    std::printf("{\"prompt\": %s, ", jsonString(Prompt).c_str());
    if (HasTarget)
      std::printf("\"target\": %s, \"match\": %s, \"p_first\": %.6f, ",
                  jsonString(Line.substr(Tab + 1)).c_str(),
                  Match ? "true" : "false", PFirst);
    else
      std::printf("\"target\": null, \"match\": null, \"p_first\": null, ");
    std::printf("\"top1\": %s, \"p_top1\": %.6f, \"generated\": %s}\n",
                jsonString(Top1).c_str(), PTop1, jsonString(Text).c_str());
  }
  llama_free(Ctx);
  llama_model_free(Model);
  llama_backend_free();
  return 0;
}
