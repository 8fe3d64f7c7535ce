//===- MemitEdits.cpp - larql-plan-edits' MODE memit ----------------------===//
#include "MemitEdits.h"
#include "FactEdits.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/KeyStats.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/MappedFile.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;

namespace vindex {

bool isMemit(Operation *Op) {
  auto I = dyn_cast<larql::InsertOp>(Op);
  return I && I.getMode() && *I.getMode() == "memit";
}

static std::string joinLayers(llvm::ArrayRef<unsigned> Layers) {
  return llvm::join(
      llvm::map_range(Layers, [](unsigned L) { return std::to_string(L); }),
      ",");
}

/// The statistics stored in the V-index (stats/) for Layers, when every
/// layer has an entry from one corpus (CorpusSha256 when not empty) whose
/// weights identity matches View (Corpus gets its name and SHA-256); else
/// std::nullopt and Why says what was missing or stale.
static llvm::Expected<std::optional<edit::KeyStatistics>>
storedStats(const TensorView &View, llvm::ArrayRef<unsigned> Layers,
            llvm::StringRef CorpusSha256, std::string &Why,
            std::pair<std::string, std::string> &Corpus) {
  const Manifest &Man = View.base().manifest();
  std::vector<const KeyStatsRecord *> Records;
  for (unsigned L : Layers) {
    auto It = llvm::find_if(Man.KeyStats, [&](const KeyStatsRecord &R) {
      return R.Layer == L;
    });
    if (It == Man.KeyStats.end()) {
      Why = llvm::formatv("the V-index has no key statistics of layer {0} "
                          "(larql-probe --key-stats)",
                          L)
                .str();
      return std::nullopt;
    }
    const KeyStatsRecord &R = *It;
    if (!Records.empty() &&
        (R.CorpusSha256 != Records.front()->CorpusSha256 ||
         R.Positions != Records.front()->Positions)) {
      Why = llvm::formatv("the stored key statistics of layers {0} and {1} "
                          "come from different corpora",
                          Records.front()->Layer, L)
                .str();
      return std::nullopt;
    }
    if (!CorpusSha256.empty() && R.CorpusSha256 != CorpusSha256) {
      Why = llvm::formatv("the stored key statistics of layer {0} come from "
                          "corpus '{1}' (SHA-256 {2}), not the corpus given",
                          L, R.Corpus, R.CorpusSha256)
                .str();
      return std::nullopt;
    }
    if (R.Features != View.ffnWidth(L)) {
      Why = llvm::formatv("the stored key statistics of layer {0} are of {1} "
                          "features, the layer has {2}",
                          L, R.Features, View.ffnWidth(L))
                .str();
      return std::nullopt;
    }
    llvm::Expected<uint64_t> Id = keyStatsWeightsIdentity(View, L);
    if (!Id)
      return Id.takeError();
    if (*Id != R.Weights) {
      Why = llvm::formatv("the stored key statistics of layer {0} are stale "
                          "(the weights its keys depend on changed since "
                          "they were measured)",
                          L)
                .str();
      return std::nullopt;
    }
    Records.push_back(&R);
  }
  edit::KeyStatistics S;
  S.Layers.assign(Layers.begin(), Layers.end());
  for (const KeyStatsRecord *R : Records) {
    llvm::Expected<std::vector<double>> C = readKeyStats(View.base(), *R);
    if (!C)
      return C.takeError();
    S.Moment.push_back(std::move(*C));
  }
  S.Positions = Records.front()->Positions;
  Corpus = {Records.front()->Corpus, Records.front()->CorpusSha256};
  S.Source = llvm::formatv("corpus '{0}' (stored, SHA-256 {1})",
                           Records.front()->Corpus,
                           Records.front()->CorpusSha256)
                 .str();
  return S;
}

static llvm::Expected<std::vector<uint64_t>>
statsWeights(const TensorView &View, const edit::MemitOptions &Opts);

/// The stored statistics (stats/) when they are View's and of Layers, into
/// Ctx (Used true); else Why says why not.
static LogicalResult useStoredStats(Operation *Op, const TensorView &View,
                                    llvm::ArrayRef<unsigned> Layers,
                                    MemitContext &Ctx,
                                    llvm::raw_ostream *Verbose, bool &Used,
                                    std::string &Why) {
  Used = false;
  std::string CorpusSha;
  if (!Ctx.CorpusName.empty()) {
    llvm::Expected<std::unique_ptr<MappedFile>> F =
        MappedFile::open(Ctx.CorpusName);
    if (!F) {
      Op->emitError() << llvm::toString(F.takeError());
      return failure();
    }
    CorpusSha = sha256Hex(**F);
  }
  std::pair<std::string, std::string> Corpus;
  llvm::Expected<std::optional<edit::KeyStatistics>> S =
      storedStats(View, Layers, CorpusSha, Why, Corpus);
  if (!S) {
    Op->emitError() << llvm::toString(S.takeError());
    return failure();
  }
  if (!*S)
    return success();
  Ctx.StatsRecord =
      llvm::formatv("memit: key statistics: stored, corpus SHA-256 {0} "
                    "('{1}', {2} positions, layers {3})",
                    Corpus.second, Corpus.first, (*S)->Positions,
                    joinLayers(Layers))
          .str();
  if (Verbose)
    *Verbose << llvm::formatv("memit: key statistics of layers {0}: the "
                              "stored ones, {1} positions of {2}\n",
                              joinLayers(Layers), (*S)->Positions,
                              (*S)->Source);
  llvm::Expected<std::vector<uint64_t>> Ids = statsWeights(View, Ctx.Options);
  if (!Ids) {
    Op->emitError() << llvm::toString(Ids.takeError());
    return failure();
  }
  Ctx.Stats = std::move(**S);
  Ctx.StatsStored = true;
  Ctx.StatsWeights = std::move(*Ids);
  Used = true;
  return success();
}

/// Key statistics of Layers measured on View over the corpus (else the
/// model's own greedy text), into Ctx; CurrentIds are the weights they
/// describe.
static LogicalResult measureStatsNow(Operation *Op, const TensorView &View,
                                     const Tokenizer &Tok,
                                     llvm::ArrayRef<unsigned> Layers,
                                     bool ScaledKeys, MemitContext &Ctx,
                                     llvm::raw_ostream *Verbose,
                                     llvm::ArrayRef<uint64_t> CurrentIds) {
  llvm::Expected<std::unique_ptr<Model>> M = Model::load(View);
  if (!M) {
    Op->emitError() << llvm::toString(M.takeError());
    return failure();
  }
  std::vector<std::vector<int32_t>> Texts;
  std::string Source;
  if (!Ctx.Corpus.empty()) {
    for (const std::string &L : Ctx.Corpus)
      Texts.push_back(Tok.encode(L));
    Source = llvm::formatv("corpus '{0}' ({1} lines)", Ctx.CorpusName,
                           Ctx.Corpus.size())
                 .str();
  } else {
    Texts = edit::greedyTexts(**M, Tok, 192, 32);
    Source = llvm::formatv("the model's greedy text ({0} texts)", Texts.size())
                 .str();
  }
  if (ScaledKeys)
    Source += ", each key over its position's FFN output rms";
  llvm::Expected<edit::KeyStatistics> S =
      edit::keyStatistics(**M, Texts, Layers, Source, Ctx.Options.NormKeys,
                          std::max(1u, Ctx.Options.Jobs));
  if (!S) {
    Op->emitError() << llvm::toString(S.takeError());
    return failure();
  }
  if (Verbose)
    *Verbose << llvm::formatv("memit: key statistics of layers {0} over {1} "
                              "positions of {2}\n",
                              joinLayers(Layers), S->Positions, Source);
  Ctx.StatsRecord = "memit: key statistics over " +
                    std::to_string(S->Positions) + " positions of " + Source;
  Ctx.Stats = std::move(*S);
  Ctx.StatsStored = false;
  Ctx.StatsWeights.assign(CurrentIds.begin(), CurrentIds.end());
  return success();
}

/// The key statistics into Ctx.Stats (and Ctx.StatsWeights, the identities
/// of the weights they describe): the stored ones when they describe
/// StoredOn (default Ed's view), else (without StoredOn) measured on Ed's
/// view, whose identities are CurrentIds.
static LogicalResult measureStats(Operation *Op, const edit::Editor &Ed,
                                  const Tokenizer &Tok, MemitContext &Ctx,
                                  llvm::raw_ostream *Verbose,
                                  llvm::ArrayRef<uint64_t> CurrentIds,
                                  const TensorView *StoredOn = nullptr) {
  const TensorView &View = StoredOn ? *StoredOn : Ed.view();
  if (Ctx.StatsMode != "auto" && Ctx.StatsMode != "stored" &&
      Ctx.StatsMode != "measure") {
    Op->emitError() << "memit-stats must be auto, stored or measure, not '"
                    << Ctx.StatsMode << "'";
    return failure();
  }
  std::vector<unsigned> Layers =
      edit::memitLayers(Ctx.Options, View.config().NumLayers);
  // Stored statistics are of raw keys: memit-norm-keys on a model with a
  // post-FFN norm measures its own.
  bool ScaledKeys = Ctx.Options.NormKeys && View.config().PostNorms;
  if (ScaledKeys && Ctx.StatsMode == "stored") {
    Op->emitError() << "memit-stats=stored: the stored key statistics are "
                       "of raw keys, memit-norm-keys needs its own";
    return failure();
  }
  if (Ctx.StatsMode != "measure" && !ScaledKeys) {
    bool Used = false;
    std::string Why;
    if (failed(useStoredStats(Op, View, Layers, Ctx, Verbose, Used, Why)))
      return failure();
    if (Used)
      return success();
    if (StoredOn) // measured where this run's statements are
      return success();
    if (Ctx.StatsMode == "stored") {
      Op->emitError() << "memit-stats=stored: " << Why;
      return failure();
    }
    if (Verbose && !View.base().manifest().KeyStats.empty())
      *Verbose << "memit: stored key statistics not used: " << Why
               << "; measuring them\n";
  } else if (StoredOn) {
    return success();
  }
  return measureStatsNow(Op, View, Tok, Layers, ScaledKeys, Ctx, Verbose,
                         CurrentIds);
}

/// The answer in Pieces: the first piece and the ones after it that start
/// before answerEnd (a multi-word answer's later words are what a
/// batch's pieces overwrite first: "lilantean", "Elbonian"; an answer's
/// part after an apostrophe or hyphen was lost at 3 x 100 when the
/// answer stopped there: "N'Djamena" -> "Nri").
static std::vector<int32_t> answerWords(const Tokenizer &Tok,
                                        llvm::ArrayRef<int32_t> Pieces) {
  std::string Text = Tok.decode(Pieces);
  size_t End = edit::answerEnd(Text);
  // A piece that starts inside the answer is kept whole ("ena." as one
  // piece), one that starts at its end is not.
  std::vector<int32_t> Words;
  for (int32_t P : Pieces) {
    if (!Words.empty() && Tok.decode(Words).size() >= End)
      break;
    Words.push_back(P);
  }
  return Words;
}

/// The probability M gives Piece after Prompt.
static double answerProbability(const Model &M, llvm::ArrayRef<int32_t> Prompt,
                                int32_t Piece) {
  Session S(M, 1);
  return edit::pieceProbability(S.run(Prompt).Logits, Piece);
}

/// The guard texts: each relation's canonical prompt (or every prompt,
/// `memit-guards=all`) with each known entity (or, with
/// `memit-guard-entities=probed`, each entity the labels record facts of
/// with the relation; with `probed-repair` each known entity, marked
/// whether the labels record it), and the model's greedy answer (3 pieces)
/// after it. The
/// answers are generated together, a token of each per batched forward on
/// Options.Jobs threads (each answer is what its prompt alone gives): on the
/// 34-layer synthetic the 256 answers, one by one, took about 6 minutes.
static LogicalResult measureGuards(Operation *Op, const edit::Editor &Ed,
                                   const Tokenizer &Tok, MemitContext &Ctx) {
  // The model the first memit statement met: below the earliest one the
  // input's patches record, if any (their features and updates are no-ops
  // there, as this run's appended features are before its updates).
  std::optional<TensorView> Before;
  if (!Ctx.Earlier.empty())
    Before.emplace(Ed.view().base(), Ctx.BeforeEarlier);
  llvm::Expected<std::unique_ptr<Model>> M =
      Model::load(Before ? *Before : Ed.view());
  if (!M) {
    Op->emitError() << llvm::toString(M.takeError());
    return failure();
  }
  std::vector<std::string> Known = Ctx.Known;
  if (Known.empty())
    Known = edit::vocabularyEntities(Tok, 256);
  std::vector<MemitContext::Guard> Guards;
  for (const auto &[Relation, Templates] : Ctx.Relations) {
    if (Templates.empty())
      continue;
    size_t Prompts = Ctx.GuardEveryPrompt ? Templates.size() : 1;
    auto It = Ctx.ProbedEntities.find(Relation);
    const std::vector<std::string> *Probed =
        It == Ctx.ProbedEntities.end() ? nullptr : &It->second;
    const std::vector<std::string> *Entities = &Known;
    if (Probed && Ctx.Pairs == MemitContext::GuardPairs::Probed)
      Entities = Probed;
    for (const std::string &E : *Entities)
      for (size_t P = 0; P < Prompts; ++P) {
        MemitContext::Guard G;
        G.Entity = E;
        G.Relation = Relation;
        G.Probed = !Probed || llvm::is_contained(*Probed, E);
        G.Text.Ids = Tok.encode(edit::fillTemplate(Templates[P], E));
        if (G.Text.Ids.empty())
          continue;
        G.Text.From = Ctx.GuardEveryPosition ? 0 : G.Text.Ids.size() - 1;
        Guards.push_back(std::move(G));
      }
  }
  std::vector<std::vector<int32_t>> Prompts;
  for (const MemitContext::Guard &G : Guards)
    Prompts.push_back(G.Text.Ids);
  // The held keys follow 3 pieces of the answer; memit-repair writes back
  // up to 12 (a currency's whole name).
  size_t Pieces = Ctx.Options.Repair ? 12 : 3;
  std::vector<std::vector<int32_t>> Answers = Session::generateMany(
      **M, Prompts, Pieces, {}, std::max(1u, Ctx.Options.Jobs));
  // Keys after the prompt and after each answer piece but the last.
  for (size_t I = 0; I < Guards.size(); ++I) {
    MemitContext::Guard &G = Guards[I];
    G.Answer.Entity = G.Entity;
    G.Answer.Relation = G.Relation;
    G.Answer.Prompts = {G.Text.Ids};
    // Only an answer the model gave with more than even odds is written
    // back: a relation with several right answers (borders) gives the
    // likeliest of near ties, and any edit flips them (a 10-fact batch on
    // tiny-llama lost 471 of 1,536 guard answers, 177 of them borders).
    if (Ctx.Options.Repair && !Answers[I].empty() &&
        answerProbability(**M, G.Text.Ids, Answers[I].front()) > 0.5) {
      G.Answer.Target = answerWords(Tok, Answers[I]);
      G.Answer.TargetText = Tok.decode(G.Answer.Target);
    }
    size_t Held = std::min<size_t>(Answers[I].size(), 3);
    if (Held)
      G.Text.Ids.insert(G.Text.Ids.end(), Answers[I].begin(),
                        Answers[I].begin() + Held - 1);
  }
  Ctx.Guards = std::move(Guards);
  return success();
}

/// The identities of the weights the edit layers' keys depend on.
static llvm::Expected<std::vector<uint64_t>>
statsWeights(const TensorView &View, const edit::MemitOptions &Opts) {
  std::vector<uint64_t> Ids;
  for (unsigned L : edit::memitLayers(Opts, View.config().NumLayers)) {
    llvm::Expected<uint64_t> Id = keyStatsWeightsIdentity(View, L);
    if (!Id)
      return Id.takeError();
    Ids.push_back(*Id);
  }
  return Ids;
}

/// `memit-widen`: appends Ctx.Widen features per fact to each edit layer
/// (so one statement of N facts and N statements of one append as many;
/// edit::appendedFeatures) as vindex.install_feature ops before Op, pushed
/// on Ed's view.
static LogicalResult widenLayers(Operation *Op, edit::Editor &Ed,
                                 MemitContext &Ctx, size_t Facts,
                                 std::string &Record) {
  std::vector<unsigned> Layers =
      edit::memitLayers(Ctx.Options, Ed.view().config().NumLayers);
  size_t Count = size_t(Ctx.Widen) * Facts;
  llvm::Expected<std::vector<edit::PlannedFeature>> Features =
      edit::appendedFeatures(Ed.view(), Layers, Count);
  if (!Features) {
    Op->emitError() << llvm::toString(Features.takeError());
    return failure();
  }
  OpBuilder B(Op);
  for (const edit::PlannedFeature &F : *Features)
    createInstallFeature(B, Op->getLoc(), F, "memit_",
                         "memit-widen: an appended feature whose down row "
                         "the update writes");
  // One patch for all of them (one per feature made the view's patch stack
  // as long as the features).
  if (llvm::Error E = Ed.apply([&](PatchBuilder &P) -> llvm::Error {
        for (const edit::PlannedFeature &F : *Features)
          if (llvm::Error E = P.setFeature(F.Layer, F.Slot, F.Gate, F.Up,
                                           F.Down))
            return E;
        return llvm::Error::success();
      })) {
    Op->emitError() << llvm::toString(std::move(E));
    return failure();
  }
  Record = llvm::formatv("memit: layers {0} widened by {1} features each "
                         "({2} per fact; pseudo-random gate and up rows, "
                         "down rows the update's)",
                         joinLayers(Layers), Count, Ctx.Widen)
               .str();
  return success();
}

/// The record line through which later runs hold a statement's facts.
static constexpr llvm::StringLiteral WrittenLine = "memit: written ";

/// The statement a patch records, without its balancer lines: the patches
/// of one statement share it.
static StringRef statementOf(const Patch &P) {
  StringRef S = P.origin().Statement;
  return S.substr(0, S.find("\n-- balance: "));
}

llvm::Error readEarlierMemit(const TensorView &View, MemitContext &Ctx) {
  llvm::ArrayRef<std::shared_ptr<const Patch>> Patches =
      View.patches().take_front(View.numPersisted());
  std::string Last;
  for (size_t I = 0; I < Patches.size(); ++I) {
    llvm::SmallVector<StringRef> Lines;
    StringRef(Patches[I]->origin().Statement).split(Lines, '\n');
    for (StringRef L : Lines) {
      L.consume_front("-- balance: ");
      if (!L.consume_front(WrittenLine))
        continue;
      if (L == Last) // the statement's other patches
        continue;
      Last = L.str();
      auto Bad = [&](llvm::StringRef Why) {
        return llvm::createStringError(
            llvm::formatv("patch {0} of the input: its record line '{1}' {2}",
                          I + 1, WrittenLine.drop_back(), Why)
                .str());
      };
      llvm::Expected<llvm::json::Value> V = llvm::json::parse(L);
      if (!V)
        return Bad("is not JSON: " + llvm::toString(V.takeError()));
      const llvm::json::Array *Rows = V->getAsArray();
      if (!Rows)
        return Bad("is not a JSON array");
      std::vector<MemitContext::EarlierRow> Statement;
      for (const llvm::json::Value &R : *Rows) {
        const llvm::json::Array *A = R.getAsArray();
        std::optional<StringRef> E, Rel, T;
        std::optional<bool> Answered;
        if (A && A->size() == 4) {
          E = (*A)[0].getAsString();
          Rel = (*A)[1].getAsString();
          T = (*A)[2].getAsString();
          Answered = (*A)[3].getAsBoolean();
        }
        if (!E || !Rel || !T || !Answered)
          return Bad("has a row that is not [entity, relation, target, "
                     "answered]");
        Statement.push_back({E->str(), Rel->str(), T->str(), *Answered});
      }
      if (Ctx.Earlier.empty()) {
        size_t From = I;
        while (From > 0 &&
               statementOf(*Patches[From - 1]) == statementOf(*Patches[I]) &&
               Patches[From - 1]->origin().ScriptSha256 ==
                   Patches[I]->origin().ScriptSha256)
          --From;
        Ctx.BeforeEarlier = From;
      }
      Ctx.Earlier.push_back(std::move(Statement));
    }
  }
  return llvm::Error::success();
}

/// Replays what the input's earlier memit statements wrote into
/// Ctx.Written and Ctx.Edited as lowerMemit's end would have (the prompts
/// and pieces are this run's relations'). Record gets a line saying so.
static LogicalResult replayEarlier(Operation *Op, const Tokenizer &Tok,
                                   uint64_t EmbeddingRows, MemitContext &Ctx,
                                   std::string &Record) {
  Ctx.EarlierReplayed = true;
  if (Ctx.Earlier.empty())
    return success();
  size_t Rows = 0;
  for (const std::vector<MemitContext::EarlierRow> &Statement : Ctx.Earlier) {
    Rows += Statement.size();
    for (const MemitContext::EarlierRow &R : Statement)
      Ctx.Edited.emplace_back(R.Entity, R.Relation);
    if (Ctx.HoldWritten == MemitContext::Hold::None)
      continue;
    llvm::erase_if(Ctx.Written, [&](const edit::Fact &F) {
      return llvm::any_of(Statement, [&](const MemitContext::EarlierRow &R) {
        return R.Entity == F.Entity && R.Relation == F.Relation;
      });
    });
    for (const MemitContext::EarlierRow &R : Statement) {
      if (!R.Answered)
        continue;
      auto It = llvm::find_if(Ctx.Relations, [&](const auto &Rel) {
        return Rel.first == R.Relation;
      });
      if (It == Ctx.Relations.end() || It->second.empty()) {
        Op->emitError() << "the input's patches record a MODE memit fact of "
                           "relation '"
                        << R.Relation << "' ('" << R.Entity
                        << "'), which this script does not create: later "
                           "statements hold earlier facts by their "
                           "relation's prompts (CREATE RELATION "
                        << R.Relation
                        << " AS '...'), or not at all (memit-hold=false)";
        return failure();
      }
      std::string Why;
      FailureOr<edit::Fact> F =
          resolveFact(Tok, EmbeddingRows, It->second, R.Entity, R.Relation,
                      StringRef(R.Target), Why);
      if (failed(F)) {
        Op->emitError() << "the input's MODE memit fact '" << R.Entity << "' "
                        << R.Relation << ": " << Why;
        return failure();
      }
      Ctx.Written.push_back(std::move(*F));
    }
  }
  Record = llvm::formatv("memit: the input records {0} earlier memit "
                         "statements of {1} facts (from its patch {2}); {3} "
                         "held, guard answers measured below patch {2}",
                         Ctx.Earlier.size(), Rows, Ctx.BeforeEarlier + 1,
                         Ctx.Written.size())
               .str();
  return success();
}

/// The key statistics this statement solves with (Ctx.Stats): stored or
/// measured, and measured again when earlier statements changed the
/// weights their keys depend on. StatsLine gets their record line.
static LogicalResult prepareStats(Operation *Op, edit::Editor &Ed,
                                  const Tokenizer &Tok, MemitContext &Ctx,
                                  bool Widened, llvm::raw_ostream *Verbose,
                                  std::string &StatsLine) {
  llvm::Expected<std::vector<uint64_t>> Weights =
      statsWeights(Ed.view(), Ctx.Options);
  if (!Weights) {
    Op->emitError() << llvm::toString(Weights.takeError());
    return failure();
  }
  // The first statement over an input that earlier runs' memit statements
  // made: the stored statistics if they describe the model the chain's
  // first statement met (stale since, as in one run of them all).
  if (!Ctx.Stats && !Ctx.Earlier.empty()) {
    TensorView Before(Ed.view().base(), Ctx.BeforeEarlier);
    if (failed(measureStats(Op, Ed, Tok, Ctx, Verbose, *Weights, &Before)))
      return failure();
  }
  // Earlier statements changed the weights the keys depend on: the
  // statistics are measured again, from the same source, so that λ C
  // describes the model this statement edits (with the first statement's
  // statistics, 3 statements of 100 facts collapsed the model).
  bool Stale = Ctx.Stats && *Weights != Ctx.StatsWeights;
  llvm::StringRef Kept;
  if (Widened)
    ; // statistics of the layers' old width cannot describe them
  else if (!Ctx.Restat)
    Kept = "memit-restat=false";
  else if (Ctx.StatsMode == "stored")
    Kept = "memit-stats=stored";
  else if (Ctx.StatsStored && Ctx.Corpus.empty())
    Kept = "their corpus was not given (larql-plan-edits{corpus=F})";
  bool Again = Stale && Kept.empty();
  if (Stale && Ctx.Restat && Verbose) {
    *Verbose << "memit: the key statistics are stale (earlier statements "
                "changed the weights their keys depend on)";
    if (Again)
      *Verbose << "; measuring them again\n";
    else
      *Verbose << " but kept: " << Kept << "\n";
  }
  if (Again)
    Ctx.Stats.reset();
  if (!Ctx.Stats && failed(measureStats(Op, Ed, Tok, Ctx, Verbose, *Weights)))
    return failure();
  StatsLine = Ctx.StatsRecord;
  if (Again)
    StatsLine += ", measured again on the weights earlier statements left";
  else if (Stale)
    StatsLine += ", stale (measured before earlier statements' edits)";
  return success();
}

/// Whether two rows (facts, guards) name the same entity and relation.
template <typename A, typename B> static bool samePair(const A &X, const B &Y) {
  return X.Entity == Y.Entity && X.Relation == Y.Relation;
}

/// What the planner holds for a statement: the earlier statements' facts
/// it does not write again (their units, with memit-hold=units), the guard
/// texts whose keys stay where they are and, for memit-repair, their
/// answers.
struct HeldAndGuarded {
  std::vector<edit::Fact> Held;
  std::vector<edit::PreservedText> Preserved;
  std::vector<edit::Fact> Guarded;
};

static HeldAndGuarded holdAndGuard(llvm::ArrayRef<edit::Fact> Facts,
                                   const MemitContext &Ctx) {
  auto EditedHere = [&](const auto &X) {
    return llvm::any_of(Facts,
                        [&](const edit::Fact &F) { return samePair(F, X); });
  };
  HeldAndGuarded Out;
  // Earlier statements' facts, but those this statement writes again.
  std::vector<edit::Fact> Earlier;
  if (Ctx.HoldWritten != MemitContext::Hold::None)
    for (const edit::Fact &F : Ctx.Written)
      if (!EditedHere(F))
        Earlier.push_back(F);
  if (Ctx.HoldWritten == MemitContext::Hold::Units)
    Out.Held = Earlier;
  // The guards but those this statement edits (and the earlier facts: a
  // guard keeps the answer the input model gave).
  if (Ctx.Guards)
    for (const MemitContext::Guard &G : *Ctx.Guards)
      if (!EditedHere(G) && llvm::none_of(Earlier, [&](const edit::Fact &F) {
            return samePair(F, G);
          })) {
        Out.Preserved.push_back(G.Text);
        if (!Ctx.Options.Repair)
          continue;
        Out.Guarded.push_back(G.Answer);
        bool Unnamed =
            Ctx.Pairs == MemitContext::GuardPairs::ProbedRepair && !G.Probed;
        if (Unnamed || llvm::is_contained(Ctx.Edited,
                                          std::make_pair(G.Entity, G.Relation)))
          Out.Guarded.back().Target.clear(); // not written back
      }
  // memit-hold=guards: an earlier fact is held as MEMIT's sequential use
  // holds earlier edits, by its keys in λ C + μ Σ k kᵀ (the canonical
  // prompt's last position and each target piece's, or every position),
  // and its units join the update only when an update loses its whole
  // target (memit-repair). Units held every round cost the solve their
  // keys each round: 8,000 units at the 10 x 100 chain's link 7.
  if (Ctx.HoldWritten == MemitContext::Hold::Guards)
    for (const edit::Fact &F : Earlier) {
      edit::PreservedText T;
      T.Ids = F.Prompts.front();
      T.From = Ctx.GuardEveryPosition ? 0 : T.Ids.size() - 1;
      T.Ids.insert(T.Ids.end(), F.Target.begin(), F.Target.end());
      Out.Preserved.push_back(std::move(T));
      if (Ctx.Options.Repair)
        Out.Guarded.push_back(F);
    }
  return Out;
}

/// The plan as `vindex` ops before Op, each carrying Record: the lifted
/// output rows (already on Ed's scratch view), then the layers' updates
/// (pushed onto it here, so that the next statement is planned against
/// them).
static LogicalResult emitPlan(Operation *Op, const edit::MemitPlan &Plan,
                              const std::string &Record, edit::Editor &Ed) {
  OpBuilder B(Op);
  MLIRContext *C = Op->getContext();
  for (const edit::PlannedRow &R : Plan.Rows) {
    if (R.UntieFirst)
      B.create<vx::UntieOutputOp>(Op->getLoc(), R.Tensor);
    std::string Name = llvm::formatv("memit_row_{0}", R.Row).str();
    auto Ty = RankedTensorType::get({1, int64_t(R.Values.size())},
                                    Float32Type::get(C));
    Attribute V = DenseF32ResourceElementsAttr::get(
        Ty, Name,
        HeapAsmResourceBlob::allocateAndCopyInferAlign(
            llvm::ArrayRef<float>(R.Values)));
    auto W = B.create<vx::UpdateWeightsOp>(Op->getLoc(), R.Tensor,
                                           int64_t(R.Row), int64_t(R.Row + 1),
                                           cast<ElementsAttr>(V));
    W->setAttr(BalanceAttr, StringAttr::get(C, Record));
  }
  for (const edit::DownUpdate &U : Plan.Updates) {
    size_t D = U.Values.size() / U.Rows;
    auto Ty = RankedTensorType::get({int64_t(U.Rows), int64_t(D)},
                                    Float32Type::get(C));
    std::string Name = llvm::formatv("memit_down_L{0}", U.Layer).str();
    Attribute V = DenseF32ResourceElementsAttr::get(
        Ty, Name,
        HeapAsmResourceBlob::allocateAndCopyInferAlign(
            llvm::ArrayRef<float>(U.Values)));
    auto W = B.create<vx::UpdateWeightsOp>(Op->getLoc(), U.Tensor, int64_t(0),
                                           int64_t(U.Rows),
                                           cast<ElementsAttr>(V));
    W->setAttr(BalanceAttr, StringAttr::get(C, Record));
    if (llvm::Error E = Ed.apply([&](PatchBuilder &P) {
          return P.setRows(U.Tensor, 0, U.Values);
        })) {
      Op->emitError() << llvm::toString(std::move(E));
      return failure();
    }
  }
  return success();
}

LogicalResult lowerMemit(Operation *Op, llvm::ArrayRef<edit::Fact> Facts,
                         edit::Editor &Ed, const Tokenizer &Tok,
                         MemitContext &Ctx, llvm::raw_ostream *Verbose) {
  std::string EarlierLine;
  if (!Ctx.EarlierReplayed &&
      failed(replayEarlier(Op, Tok, Ed.view().config().VocabSize, Ctx,
                           EarlierLine)))
    return failure();
  if (Verbose && !EarlierLine.empty())
    *Verbose << EarlierLine << "\n";
  std::string WidenLine;
  if (Ctx.Widen && failed(widenLayers(Op, Ed, Ctx, Facts.size(), WidenLine)))
    return failure();
  if (Verbose && !WidenLine.empty())
    *Verbose << WidenLine << "\n";
  std::string StatsLine;
  if (failed(prepareStats(Op, Ed, Tok, Ctx, !WidenLine.empty(), Verbose,
                          StatsLine)))
    return failure();
  if (!Ctx.Guards && (Ctx.Options.PreserveWeight > 0 || Ctx.Options.Repair) &&
      failed(measureGuards(Op, Ed, Tok, Ctx)))
    return failure();
  HeldAndGuarded H = holdAndGuard(Facts, Ctx);
  llvm::Expected<edit::MemitPlan> Plan = edit::planMemit(
      Ed.view(), Tok, Facts, *Ctx.Stats, H.Preserved, Ctx.Options, Verbose,
      [&](int32_t Token, std::string &Rec) {
        return Ed.liftOutputRow(Token, Rec);
      },
      H.Held, H.Guarded);
  if (!Plan) {
    Op->emitError() << llvm::toString(Plan.takeError());
    return failure();
  }
  std::string Record = llvm::join(Plan->Record, "\n");
  Record += "\n" + StatsLine;
  if (!WidenLine.empty())
    Record += "\n" + WidenLine;
  if (!EarlierLine.empty())
    Record += "\n" + EarlierLine;
  // What a later run over the output holds (readEarlierMemit): every row,
  // and whether it was answered.
  llvm::json::Array Rows;
  for (size_t I = 0; I < Facts.size(); ++I)
    Rows.push_back(llvm::json::Array{Facts[I].Entity, Facts[I].Relation,
                                     Facts[I].TargetText,
                                     bool(Plan->Answered[I])});
  Record += "\n" + WrittenLine.str() +
            llvm::formatv("{0}", llvm::json::Value(std::move(Rows))).str();
  if (failed(emitPlan(Op, *Plan, Record, Ed)))
    return failure();
  // What later statements hold: this statement's facts replace the same
  // pairs written before; a fact not answered after the last round is not
  // held (holding a statement that did not converge compounds it).
  llvm::erase_if(Ctx.Written, [&](const edit::Fact &X) {
    return llvm::any_of(Facts,
                        [&](const edit::Fact &F) { return samePair(F, X); });
  });
  for (size_t I = 0; I < Facts.size(); ++I)
    if (Plan->Answered[I])
      Ctx.Written.push_back(Facts[I]);
  Op->erase();
  return success();
}

} // namespace vindex
