//===- Editor.cpp - The slot method and the balancer ----------------------===//
//
// See include/vindex/Edit/Editor.h. The balancer is a measured search: for
// each target piece, the smallest strength of the down vector that makes
// the piece reach the goal probability (doubling, then bisection), then a
// check of the guard prompts (the nearest other prompts by key, each keeping
// its answer and that answer's probability within the tolerance); a guard
// that moves makes the gate sharper and the fact is balanced again.
//
//===----------------------------------------------------------------------===//
#include "Internal.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Store/Patch.h"
#include "vindex/Support/Error.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <numeric>
#include <optional>
#include <set>
#include <utility>

using namespace llvm;

namespace vindex::edit {

std::string fillTemplate(StringRef Template, StringRef Entity) {
  std::string Out;
  size_t At = 0;
  for (size_t P; (P = Template.find("{entity}", At)) != StringRef::npos;
       At = P + 8)
    (Out += Template.slice(At, P)) += Entity;
  Out += Template.substr(At);
  return Out;
}

std::vector<std::string> vocabularyEntities(const Tokenizer &Tok, size_t Max) {
  std::vector<std::string> Out;
  for (size_t Id = 0; Id < Tok.vocabSize() && Out.size() < Max; ++Id) {
    if (Tok.isSpecial(int32_t(Id)))
      continue;
    StringRef P = Tok.piece(int32_t(Id));
    if (!P.consume_front("\xE2\x96\x81") && !P.consume_front("\xC4\xA0"))
      continue;
    if (P.size() < 3 || !isUpper(P[0]) ||
        !all_of(P.drop_front(), [](char C) { return isAlpha(C); }))
      continue;
    Out.push_back(P.str());
  }
  return Out;
}

namespace {

/// A prompt of the sample: its ids, what the unedited model answers, and
/// its key at every layer.
struct SamplePrompt {
  std::string Entity, Relation;
  std::vector<int32_t> Ids;
  int32_t Answer = -1;
  std::vector<std::vector<float>> Keys;
  /// Whether its positions joined the key statistics (the guard entities'
  /// prompts are negatives and guards only).
  bool InStats = true;
  /// The model's greedy answer (up to AnswerSteps pieces) and the keys
  /// ([step][layer]) after each of its pieces.
  std::vector<int32_t> Continuation;
  std::vector<std::vector<std::vector<float>>> AnswerKeys;
};

struct Outcome {
  int32_t Top = -1;
  double PTop = 0, PWant = 0;
  /// The wanted token's logit less the top one's (0 when it is the top).
  double Margin = 0;
};

/// What planFact fixes for a fact before its rounds of sharper gates.
struct FactJob {
  EditKind Kind = EditKind::Insert;
  const Fact *F = nullptr;
  size_t FactIndex = 0;
  const EditOptions *Opts = nullptr;
  ArrayRef<TrialFeature> Accepted;
  raw_ostream *Rec = nullptr;
  ArrayRef<int32_t> Prompt;
  unsigned Layer = 0;
  /// The model's answer before the fact (DELETE's and UPDATE's old one).
  Outcome Before;
  /// DELETE: the relation's answers, none of which may take the old one's
  /// place.
  std::vector<int32_t> Suppress;
  /// The first piece's probability goal.
  double Goal = 0;
  /// Steps before the word's end (DELETE: one).
  size_t Pieces = 0;
};

/// A piece's step: where it is written (Ctx, with Trials in place), what
/// its write raises and lowers, the piece it wants (-1: DELETE's), and the
/// keys (every layer) its features are fitted to: the step's own, the same
/// position under the relation's other prompts, the piece after other
/// words (a later piece's) and the fact's other positions.
struct PieceStep {
  size_t J = 0;
  std::vector<int32_t> Ctx;
  std::vector<TrialFeature> Trials;
  std::vector<int32_t> Raise, Lower;
  int32_t Want = -1;
  std::vector<std::vector<float>> Keys;
  std::vector<std::vector<std::vector<float>>> Elsewhere, ParaKeys;
  ArrayRef<std::vector<std::vector<float>>> PosKeys;
};

/// One layer's feature for a piece: T; a later piece's second feature
/// (Cap), its write subtracted from T's; the write direction; the
/// feature's activation at the key.
struct PiecePart {
  TrialFeature T;
  std::optional<TrialFeature> Cap;
  std::vector<float> Dir;
  double ActKey = 0;
};

/// The strength search of one piece: the layers that write it (Parts;
/// Saturated, the share of the piece's probability their writes can reach;
/// the last fit's note), the probability it needs, whether its output row
/// was lifted, the bracket (Lo, Hi] and the last trial's outcome (Ok, O)
/// and features (Cs).
struct PieceSearch {
  std::vector<PiecePart> Parts;
  double Saturated = 1;
  std::string FitNote;
  double Need = 0;
  bool LiftedHere = false;
  double Lo = 0, Hi = 0;
  bool Ok = false;
  Outcome O;
  std::vector<TrialFeature> Cs;
};

/// How a piece's step ended: its features written; not needed (the end of
/// the word, where the model already ends it); failed (no strength
/// reached the goal).
enum class PieceResult { Written, Unneeded, Failed };

} // namespace

struct Editor::Impl {
  const Tokenizer &Tok;
  raw_ostream *Verbose;
  TensorView Scratch;
  std::unique_ptr<Model> M;
  std::vector<LayerStats> Stats;
  std::vector<SamplePrompt> Prompts;
  /// Per layer, the unweighted sums of x x^T and x over every sample
  /// prompt's last-position key: the base of every gate fit's negatives.
  std::vector<std::vector<double>> PoolSecond, PoolSum;
  /// The keys ([position][layer][hidden]) of every fact of the statement
  /// being planned, every prompt, the prompt's last position and after each
  /// piece, captured before any of its features: each fact's gate is
  /// fitted to stay quiet on the others' positions, later rows' too.
  std::vector<std::vector<std::vector<std::vector<float>>>> StatementKeys;
  /// Per fact of the statement, the keys ([layer][hidden]) of inputs where
  /// the statement check found its features firing and an answer changed:
  /// negatives of its refit.
  std::vector<std::vector<std::vector<std::vector<float>>>> Repairs;
  static constexpr double RepairWeight = 1.0;
  static constexpr unsigned CheckRounds = 3;
  static constexpr double FireFloor = -0.5;
  /// (entity, relation) pairs of the statement being planned: no guards.
  std::set<std::pair<std::string, std::string>> InStatement;
  /// One round of the statement check: every fact generated whole with
  /// every feature of the statement in place, and every guard prompt's
  /// greedy answer; where one is lost, the features that fire there get
  /// its key as a negative. Returns the facts to refit, in row order.
  std::vector<size_t>
  checkStatement(EditKind Kind, llvm::ArrayRef<Fact> Facts,
                 llvm::ArrayRef<std::vector<TrialFeature>> PerFact,
                 std::string &Note, std::pair<size_t, size_t> &Lost);
  /// Facts whose features fire (pre-activation above a share of their key's)
  /// at Keys, strongest first (at most 3), not Except.
  std::vector<size_t> firing(llvm::ArrayRef<std::vector<float>> Keys,
                             llvm::ArrayRef<std::vector<TrialFeature>> PerFact,
                             size_t Except);
  /// The norm of what feature T writes at an input whose key is X, over
  /// the key's norm.
  double writeShare(const TrialFeature &T, llvm::ArrayRef<float> X) const {
    float G = float(dot(T.Gate, X)), U = float(dot(T.Up, X));
    activateAndMultiply(M->config().Act, &G, &U, 1);
    double Down = std::sqrt(dot(T.Down, T.Down)), Key = std::sqrt(dot(X, X));
    return std::fabs(G) * Down / std::max(Key, 1e-12);
  }
  /// (entity, relation) pairs edited so far: their prompts guard nothing.
  std::set<std::pair<std::string, std::string>> Edited;
  /// The final states (after the final norm) of the sample, every
  /// position: where ordinary text puts what the LM head reads.
  struct FinalStats {
    size_t D = 0;
    double Count = 0, Radius = 0;
    std::vector<double> Second;
    void add(ArrayRef<float> X, ArrayRef<float> FN, double Eps) {
      D = FN.size();
      if (Second.empty())
        Second.assign(D * D, 0);
      std::vector<double> Y(D);
      for (size_t T = 0; T + D <= X.size(); T += D) {
        double MS = 0;
        for (size_t I = 0; I < D; ++I)
          MS += double(X[T + I]) * X[T + I];
        double Inv = 1 / std::sqrt(MS / D + Eps), N = 0;
        for (size_t I = 0; I < D; ++I)
          N += (Y[I] = X[T + I] * Inv * FN[I]) * Y[I];
        Radius += std::sqrt(N);
        for (size_t I = 0; I < D; ++I)
          for (size_t J = 0; J < D; ++J)
            Second[I * D + J] += Y[I] * Y[J];
        Count += 1;
      }
    }
  } Finals;
  double MaxTopLogit = -1e30;
  /// Per layer, b with b.x ~ 1 on the layer's ordinary inputs (ridge least
  /// squares over the key statistics): the FFN has no bias, and b.x stands
  /// in for one (b.x is within 0.9-1.1 of the key's on the fixtures'
  /// prompts). Computed when first needed.
  std::vector<std::vector<float>> BiasVectors;
  const std::vector<float> &biasVector(unsigned Layer);
  /// A later piece is written by a pair of features whose write saturates
  /// (see planFact): full from SaturateAt of the key's gate response up,
  /// none below SaturateFrom.
  static constexpr double SaturateFrom = 0.25, SaturateAt = 0.55;
  /// The keys ([layer][hidden]) of every position of the facts written so
  /// far (prompt's last, then after each piece).
  std::vector<std::vector<std::vector<float>>> Written;
  /// Output rows lifted by this statement's plan (see liftRow).
  std::vector<PlannedRow> Lifted;
  /// The output matrix's second moment sum_t u_t u_t^T and its trace
  /// (liftRow; empty until first needed, dropped when a vindex op changes
  /// the weights).
  std::vector<double> HeadSecond;
  double HeadTrace = 0;

  Impl(const TensorView &V, const Tokenizer &Tok, raw_ostream *Verbose)
      : Tok(Tok), Verbose(Verbose), Scratch(V) {}

  size_t hidden() const { return M->config().HiddenSize; }

  DType ffnType(unsigned Layer) const {
    const TensorRecord *T = Scratch.find(TensorRole::FFNGate, int(Layer));
    return T ? T->Type : DType::F32;
  }

  /// Logits at every position of Ids with Trials.
  std::vector<float> logits(ArrayRef<int32_t> Ids,
                            ArrayRef<TrialFeature> Trials, bool All = false) {
    ForwardOptions O = trialOptions(*M, Trials);
    O.AllLogits = All;
    Session S(*M, 1);
    return S.run(Ids, O).Logits;
  }

  Outcome outcome(ArrayRef<int32_t> Ids, ArrayRef<TrialFeature> Trials,
                  int32_t Want) {
    std::vector<float> L = logits(Ids, Trials);
    std::vector<double> P = softmax(L);
    Outcome O;
    O.Top = int32_t(std::max_element(P.begin(), P.end()) - P.begin());
    O.PTop = P[O.Top];
    O.PWant = Want >= 0 ? P[Want] : 0;
    O.Margin = Want >= 0 ? double(L[Want]) - L[O.Top] : 0;
    return O;
  }

  /// A sequence of the sample: its tokens, run, then extended greedily
  /// by up to Extend tokens (stopping before a special token).
  struct SampleSeq {
    std::vector<int32_t> Ids;
    unsigned Extend = 0;
    std::string Entity, Relation;
    bool InStats = true;
    /// Filled by runSample: the prompt's length (Ids then holds the
    /// tokens appended too), per position its key at every layer
    /// ([layer * hidden]) and the last layer's output, the logits at the
    /// prompt's last position and at the last position.
    size_t PromptLen = 0;
    std::vector<std::vector<float>> Keys, Outs;
    std::vector<float> PromptLogits, LastLogits;
  };
  /// How much of the sample is measured: what an output-row lift reads
  /// (the final states and the largest top logit of the statistics'
  /// sequences), or everything (also the keys of every layer, the prompts
  /// and their answers) for planning slot features.
  enum class SampleDepth { None, Finals, Full };
  /// Runs the sequences together, one token of each per Session::step
  /// (the weights read once for all of them: the sample is hundreds of
  /// short sequences); with Keys, each position's key at every layer.
  void runSample(MutableArrayRef<SampleSeq> Seqs, bool Keys);
  /// What a sequence run adds to the sample: statistics, a prompt.
  void addToSample(SampleSeq &Q, SampleDepth Depth);
  Error loadSample(const Sample &S);
  /// The sample's statistics, measured once to each depth: at creation, or
  /// at the first use when the sample says so (Sample::MeasureAtCreate),
  /// then on the model of the view the editor was created with, so the
  /// statistics are the same whenever they are taken.
  Error measureSample(SampleDepth Depth = SampleDepth::Full);
  Error measure(const Sample &S, SampleDepth Depth);
  std::vector<SampleSeq> sampleSequences(const Sample &S, bool Full,
                                         std::vector<std::string> &Entities,
                                         size_t &Guarding, size_t &NumKnown);
  void poolPromptKeys();
  Sample Pending;
  std::optional<TensorView> Created;
  SampleDepth Measured = SampleDepth::None;
  static constexpr unsigned SelfSeeds = 192, SelfLength = 32;
  /// Sequences of the sample run together.
  static constexpr size_t SampleBatch = 128;
  static constexpr size_t MaxKnown = 1000;
  /// Pieces of each guard prompt's greedy answer whose keys are negatives.
  /// Long answers need most of them: with 3, tiny-llama's 61-fact batch
  /// turned "Swazi lilangeni" into "lilangenianiaania" (a later piece's
  /// feature firing deep inside another answer); with 8 it keeps 1157 of
  /// 1161 trained answers instead of 1150.
  static constexpr unsigned AnswerSteps = 8;
  /// The beginnings of the model's own greedy texts (run with Extend =
  /// SelfLength).
  std::vector<std::vector<int32_t>> selfTextSeeds();
  Error liftRow(int32_t Token, size_t Fact, raw_ostream &Rec);
  /// Adds Sign R R^T to HeadSecond (and R.R to its trace).
  void addHeadRow(ArrayRef<double> R, double Sign);
  /// The direction least used by ordinary final states and by every output
  /// row: the eigenvector of the smallest eigenvalue of their normalised
  /// second moments' sum (inverse iteration); none if the solve fails.
  std::optional<std::vector<double>> leastUsedDirection();
  /// Gives a model whose LM head is its embedding an output matrix of its
  /// own on the scratch view (before its first lifted row); false when it
  /// already has one.
  Expected<bool> untieOutput();
  unsigned chooseLayer(const Fact &F, ArrayRef<TrialFeature> Accepted,
                       std::string &Why);
  void saturate(TrialFeature &T, std::optional<TrialFeature> &Cap,
                double &ActKey, ArrayRef<double> Sep, double KS,
                unsigned Layer, ArrayRef<float> Key, double Sharp);
  std::vector<const SamplePrompt *> guards(const Fact &F, unsigned Layer,
                                           ArrayRef<float> Key, unsigned N);
  NegativePool negatives(const Fact &F, size_t FactIndex, unsigned Layer);
  /// The keys (every layer) after Piece following each of a few ordinary
  /// beginnings of text ("He", "The", ...): the piece outside the fact.
  std::vector<std::vector<std::vector<float>>>
  pieceElsewhereKeys(int32_t Piece, ArrayRef<TrialFeature> Trials);
  std::vector<float> writeDirection(unsigned Layer, ArrayRef<int32_t> Ctx,
                                    ArrayRef<TrialFeature> Trials,
                                    ArrayRef<int32_t> Raise,
                                    ArrayRef<int32_t> Lower, double &Saturated);
  Expected<std::vector<TrialFeature>>
  planFact(EditKind Kind, const Fact &F, size_t FactIndex,
           const EditOptions &Opts, ArrayRef<TrialFeature> Accepted,
           std::string &Record);
  Expected<PieceResult>
  planPiece(const FactJob &Job, size_t J, double Sharp,
            ArrayRef<std::vector<std::vector<float>>> PosKeys,
            std::vector<TrialFeature> &Mine, raw_ostream &StepOS,
            std::string &Failure);
  Expected<bool>
  beginPieceStep(const FactJob &Job, size_t J,
                 ArrayRef<std::vector<std::vector<float>>> PosKeys,
                 ArrayRef<TrialFeature> Mine, PieceStep &Step);
  Error addPieceLayer(const FactJob &Job, const PieceStep &Step, PieceSearch &S,
                      unsigned L, double Sharp);
  void doubleStrength(const FactJob &Job, const PieceStep &Step, PieceSearch &S,
                      double ResNorm);
  Expected<bool> widenPiece(const FactJob &Job, const PieceStep &Step,
                            PieceSearch &S, double Sharp);
  void bisectStrength(const FactJob &Job, const PieceStep &Step,
                      PieceSearch &S);
  Expected<PiecePart> piecePart(const FactJob &Job, const PieceStep &Step,
                                unsigned L, double Sharp, double &Saturated,
                                std::string &FitNote);
  std::tuple<bool, Outcome, std::vector<TrialFeature>>
  tryStrength(const FactJob &Job, const PieceStep &Step,
              ArrayRef<PiecePart> Parts, double S, double Need);
  std::vector<std::vector<std::vector<float>>>
  factPositionKeys(const FactJob &Job, ArrayRef<TrialFeature> Previous);
  bool generatesWhole(const FactJob &Job, ArrayRef<TrialFeature> Mine,
                      std::string &Failure);
  bool guardsKept(const FactJob &Job, ArrayRef<const SamplePrompt *> Guards,
                  ArrayRef<Outcome> GuardBefore, ArrayRef<TrialFeature> Mine,
                  double Sharp, StringRef Steps);
  /// True if the token goes on with the word before it (no word marker,
  /// and a letter or digit first).
  bool continues(int32_t Id) const {
    if (Tok.isSpecial(Id))
      return false;
    StringRef P = Tok.piece(Id);
    if (P.empty() || P.starts_with("\xE2\x96\x81") || P.starts_with("\xC4\xA0"))
      return false;
    return isAlnum(P[0]) || (unsigned char)P[0] >= 0x80;
  }
  std::string text(ArrayRef<int32_t> Ids) const {
    return Tok.decode(Ids);
  }
};

void Editor::Impl::runSample(MutableArrayRef<SampleSeq> Seqs, bool Keys) {
  size_t D = hidden(), L = M->numLayers(), V = M->config().VocabSize;
  std::vector<std::unique_ptr<Session>> Sess;
  for (SampleSeq &Q : Seqs) {
    Sess.push_back(std::make_unique<Session>(*M, 1));
    Q.PromptLen = Q.Ids.size();
    Q.Keys.clear();
    Q.Outs.clear();
  }
  std::vector<size_t> Active;
  std::vector<Session *> Rows;
  std::vector<int32_t> Tokens;
  ForwardOptions O;
  if (Keys)
    O.AfterFFN = [&](size_t Layer, size_t, size_t T, ArrayRef<float> In,
                     MutableArrayRef<float>) {
      for (size_t R = 0; R < T; ++R)
        std::copy(In.begin() + R * D, In.begin() + (R + 1) * D,
                  Seqs[Active[R]].Keys.back().begin() + Layer * D);
    };
  O.AfterLayer = [&](size_t Layer, size_t, size_t T,
                     MutableArrayRef<float> X) {
    if (Layer + 1 == L)
      for (size_t R = 0; R < T; ++R)
        Seqs[Active[R]].Outs.emplace_back(X.begin() + R * D,
                                          X.begin() + (R + 1) * D);
  };
  for (size_t Step = 0;; ++Step) {
    Active.clear();
    Rows.clear();
    Tokens.clear();
    for (size_t I = 0; I < Seqs.size(); ++I) {
      SampleSeq &Q = Seqs[I];
      if (Step == Q.Ids.size() && Step > 0 &&
          Q.Ids.size() < Q.PromptLen + Q.Extend) {
        int32_t Next = int32_t(argmax(Q.LastLogits));
        if (!Tok.isSpecial(Next))
          Q.Ids.push_back(Next);
      }
      if (Step >= Q.Ids.size())
        continue;
      Active.push_back(I);
      Rows.push_back(Sess[I].get());
      Tokens.push_back(Q.Ids[Step]);
      if (Keys)
        Q.Keys.emplace_back(L * D);
    }
    if (Active.empty())
      break;
    std::vector<float> Logits = Session::step(Rows, Tokens, O).Logits;
    for (size_t R = 0; R < Active.size(); ++R) {
      SampleSeq &Q = Seqs[Active[R]];
      Q.LastLogits.assign(Logits.begin() + R * V, Logits.begin() + (R + 1) * V);
      if (Step + 1 == Q.PromptLen)
        Q.PromptLogits = Q.LastLogits;
    }
  }
}

void Editor::Impl::addToSample(SampleSeq &Q, SampleDepth Depth) {
  size_t D = hidden(), L = M->numLayers();
  // The statistics: a relation prompt's own positions; a text's, every one.
  bool Text = Q.Relation.empty();
  size_t N = Text ? Q.Ids.size() : Q.PromptLen;
  bool Full = Depth == SampleDepth::Full;
  if (Q.InStats) {
    for (size_t Layer = 0; Full && Layer < L; ++Layer)
      for (size_t Tk = 0; Tk < N; ++Tk)
        Stats[Layer].add(&Q.Keys[Tk][Layer * D]);
    for (size_t Tk = 0; Tk < N; ++Tk)
      Finals.add(Q.Outs[Tk], M->finalNorm(), M->config().NormEps);
    const std::vector<float> &Logits = Text ? Q.LastLogits : Q.PromptLogits;
    MaxTopLogit = std::max(
        MaxTopLogit, double(*std::max_element(Logits.begin(), Logits.end())));
  }
  if (Text || !Full)
    return;
  auto KeysAt = [&](size_t Tk) {
    std::vector<std::vector<float>> All(L);
    for (size_t Layer = 0; Layer < L; ++Layer)
      All[Layer].assign(Q.Keys[Tk].begin() + Layer * D,
                        Q.Keys[Tk].begin() + (Layer + 1) * D);
    return All;
  };
  SamplePrompt P;
  P.Entity = std::move(Q.Entity);
  P.Relation = std::move(Q.Relation);
  P.Ids.assign(Q.Ids.begin(), Q.Ids.begin() + Q.PromptLen);
  P.Answer = int32_t(argmax(Q.PromptLogits));
  P.Keys = KeysAt(Q.PromptLen - 1);
  P.InStats = Q.InStats;
  // The model's own answer, greedily (the pieces appended), and the keys
  // after each of its pieces: where a later piece's feature must stay
  // quiet (measured: with the prompts' last positions alone, ten facts
  // cost tiny-llama trained answers in their second and third pieces,
  // "Porto-Novo" -> "Portoe").
  for (size_t Tk = Q.PromptLen; Tk < Q.Ids.size(); ++Tk) {
    P.Continuation.push_back(Q.Ids[Tk]);
    P.AnswerKeys.push_back(KeysAt(Tk));
  }
  Prompts.push_back(std::move(P));
}

std::vector<std::vector<int32_t>> Editor::Impl::selfTextSeeds() {
  // Greedy continuations (SelfLength tokens) of the beginning of text and
  // of its SelfSeeds most likely first tokens: deterministic, and drawn
  // from what the model itself finds ordinary.
  std::vector<int32_t> Start = Tok.encode("");
  if (Start.empty())
    if (std::optional<int32_t> B = Tok.bosId())
      Start.push_back(*B);
  std::vector<std::vector<int32_t>> Out;
  if (Start.empty())
    return Out;
  std::vector<float> L0 = logits(Start, {});
  std::vector<int32_t> Order(L0.size());
  std::iota(Order.begin(), Order.end(), 0);
  std::stable_sort(Order.begin(), Order.end(),
                   [&](int32_t A, int32_t B) { return L0[A] > L0[B]; });
  for (size_t K = 0; K < Order.size() && Out.size() < SelfSeeds; ++K) {
    if (Tok.isSpecial(Order[K]))
      continue;
    Out.push_back(Start);
    Out.back().push_back(Order[K]);
  }
  return Out;
}

Error Editor::Impl::loadSample(const Sample &S) {
  Expected<std::unique_ptr<Model>> Loaded = Model::load(Scratch);
  if (!Loaded)
    return Loaded.takeError();
  M = std::move(*Loaded);
  Pending = S;
  if (S.MeasureAtCreate)
    return measureSample(SampleDepth::Full);
  if (S.MeasureOnPatches >= Scratch.patches().size()) {
    Created.emplace(Scratch);
    return Error::success();
  }
  Created.emplace(Scratch.base(), S.MeasureOnPatches);
  return Error::success();
}

Error Editor::Impl::measureSample(SampleDepth Depth) {
  if (Measured >= Depth)
    return Error::success();
  Measured = Depth;
  if (!Created)
    return measure(Pending, Depth);
  // Deferred: the scratch view may hold edits by now, so the sample runs
  // on a model of the view as it was at creation.
  Expected<std::unique_ptr<Model>> AtCreation = Model::load(*Created);
  if (!AtCreation)
    return AtCreation.takeError();
  std::unique_ptr<Model> Current = std::exchange(M, std::move(*AtCreation));
  Error E = measure(Pending, Depth);
  M = std::move(Current);
  return E;
}

/// The sample's sequences, in order: the relation prompts of the
/// statistics' entities (Entities), the corpus lines, the model's own text,
/// and for a full measurement the guards' prompts (Guarding of them, of
/// NumKnown known entities).
std::vector<Editor::Impl::SampleSeq>
Editor::Impl::sampleSequences(const Sample &S, bool Full,
                              std::vector<std::string> &Entities,
                              size_t &Guarding, size_t &NumKnown) {
  Entities = vocabularyEntities(Tok, 160);
  for (const std::string &E : S.Entities)
    if (!is_contained(Entities, E))
      Entities.push_back(E);
  std::vector<SampleSeq> Seqs;
  auto Add = [&](std::vector<int32_t> Ids, unsigned Extend, StringRef Entity,
                 StringRef Relation, bool InStats) {
    if (Ids.empty())
      return;
    SampleSeq Q;
    Q.Ids = std::move(Ids);
    Q.Extend = Extend;
    Q.Entity = Entity.str();
    Q.Relation = Relation.str();
    Q.InStats = InStats;
    Seqs.push_back(std::move(Q));
  };
  // A lift reads the prompts' own positions, not their answers.
  for (const auto &[Relation, Templates] : S.Relations)
    for (const std::string &E : Entities)
      for (const std::string &T : Templates)
        Add(Tok.encode(fillTemplate(T, E)), Full ? AnswerSteps : 0, E, Relation,
            true);
  for (const std::string &Line : S.Text)
    Add(Tok.encode(Line), 0, "", "", true);
  // Without a corpus, the model's own text stands in for ordinary text:
  // the relations the session knows are a handful of prompt shapes, and a
  // separator fitted on them alone fires on every other shape (measured:
  // a one-fact INSERT cost tiny-gemma3 79 of 1161 trained facts, answers of
  // other relations' prompts turning into the target's pieces).
  if (S.Text.empty()) {
    std::vector<std::vector<int32_t>> Seeds = selfTextSeeds();
    if (Verbose)
      *Verbose << formatv("edit: {0} greedy texts of the model join the "
                          "sample\n",
                          Seeds.size());
    for (std::vector<int32_t> &Ids : Seeds)
      Add(std::move(Ids), SelfLength, "", "", true);
  }
  // The guard entities: every entity the V-index's labels list (the probed
  // ones), else every whole word of the vocabulary, with every relation:
  // negatives of every gate fit and guards of the statement check, not
  // statistics (measured: the statistics drawn from 400 entities instead
  // of 160 cost tiny-gemma3's one fact 17 trained answers instead of 6).
  std::vector<std::string> Known = S.Known;
  if (Known.empty())
    Known = vocabularyEntities(Tok, MaxKnown);
  NumKnown = Known.size();
  // (A lift reads none of them.)
  Guarding = 0;
  for (const auto &[Relation, Templates] : S.Relations)
    for (const std::string &E : Known) {
      if (!Full || is_contained(Entities, E))
        continue;
      for (const std::string &T : Templates)
        Add(Tok.encode(fillTemplate(T, E)), AnswerSteps, E, Relation, false),
            ++Guarding;
    }
  return Seqs;
}

/// The pooled moments of every prompt's keys (its own and its answers'),
/// per layer: the sum and the uncentred second moment.
void Editor::Impl::poolPromptKeys() {
  size_t D = hidden(), L = M->numLayers();
  PoolSecond.assign(L, std::vector<double>(D * D, 0.0));
  PoolSum.assign(L, std::vector<double>(D, 0.0));
  for (size_t Layer = 0; Layer < L; ++Layer)
    for (const SamplePrompt &P : Prompts)
      for (size_t K = 0; K <= P.AnswerKeys.size(); ++K) {
        const std::vector<float> &X =
            K == 0 ? P.Keys[Layer] : P.AnswerKeys[K - 1][Layer];
        for (size_t I = 0; I < D; ++I) {
          PoolSum[Layer][I] += X[I];
          double *Row = &PoolSecond[Layer][I * D];
          for (size_t J = 0; J < D; ++J)
            Row[J] += double(X[I]) * X[J];
        }
      }
}

Error Editor::Impl::measure(const Sample &S, SampleDepth Depth) {
  size_t D = hidden(), L = M->numLayers();
  bool Full = Depth == SampleDepth::Full;
  // From the start: a full measurement after a finals-only one sums again.
  Finals = FinalStats();
  MaxTopLogit = -1e30;
  Prompts.clear();
  Stats.assign(L, LayerStats());
  for (LayerStats &St : Stats)
    St.D = D;
  std::vector<std::string> Entities;
  size_t Guarding = 0, NumKnown = 0;
  std::vector<SampleSeq> Seqs =
      sampleSequences(S, Full, Entities, Guarding, NumKnown);
  for (size_t B = 0; B < Seqs.size(); B += SampleBatch) {
    MutableArrayRef<SampleSeq> Chunk =
        MutableArrayRef(Seqs).slice(B, std::min(SampleBatch, Seqs.size() - B));
    runSample(Chunk, Full);
    for (SampleSeq &Q : Chunk) {
      addToSample(Q, Depth);
      Q = SampleSeq();
    }
  }
  if (!Full) {
    if (Finals.Count == 0)
      return makeError("no sample to measure the final states on (no "
                       "relation and no text)");
    if (Verbose)
      *Verbose << formatv("edit: final states over {0} positions (what an "
                          "output-row lift reads)\n",
                          size_t(Finals.Count));
    return Error::success();
  }
  poolPromptKeys();
  if (Verbose)
    *Verbose << formatv("edit: {0} guard prompts of {1} known entities\n",
                        Guarding, NumKnown);
  for (LayerStats &St : Stats)
    St.finish();
  if (Stats.front().Count == 0)
    return makeError("no sample to measure the layers' keys on (no relation "
                     "and no text)");
  if (Verbose)
    *Verbose << formatv("edit: key statistics over {0} positions of {1} "
                        "prompts ({2} relation prompts, {3} entities)\n",
                        Stats.front().Count,
                        Prompts.size() + S.Text.size(), Prompts.size(),
                        Entities.size());
  return Error::success();
}

std::vector<const SamplePrompt *>
Editor::Impl::guards(const Fact &F, unsigned Layer, ArrayRef<float> Key,
                     unsigned N) {
  std::vector<std::pair<double, const SamplePrompt *>> Near;
  for (const SamplePrompt &P : Prompts) {
    if (Edited.count({P.Entity, P.Relation}) ||
        InStatement.count({P.Entity, P.Relation}) ||
        (P.Entity == F.Entity && P.Relation == F.Relation))
      continue;
    const std::vector<float> &X = P.Keys[Layer];
    double Dist = 0;
    for (size_t I = 0; I < X.size(); ++I)
      Dist += (double(X[I]) - Key[I]) * (double(X[I]) - Key[I]);
    Near.push_back({Dist, &P});
  }
  std::stable_sort(Near.begin(), Near.end(),
                   [](auto &A, auto &B) { return A.first < B.first; });
  std::vector<const SamplePrompt *> Out;
  for (size_t I = 0; I < Near.size() && I < N; ++I)
    Out.push_back(Near[I].second);
  return Out;
}

NegativePool Editor::Impl::negatives(const Fact &F, size_t FactIndex,
                                     unsigned Layer) {
  // The base: every sample prompt's key (together weighing as much as the
  // statistics), less the fact's own prompts; then, together weighing as
  // much again, every position of the statement's other facts and of the
  // facts written before. fitGate reweights the ones it cannot keep below
  // the margin.
  NegativePool Pool;
  Pool.BaseSecond = &PoolSecond[Layer];
  Pool.BaseSum = &PoolSum[Layer];
  size_t N = 0;
  for (const SamplePrompt &P : Prompts)
    N += 1 + P.AnswerKeys.size();
  Pool.BaseWeight = 1.0 / double(std::max<size_t>(N, 1));
  for (const SamplePrompt &P : Prompts) {
    bool Own = P.Entity == F.Entity && P.Relation == F.Relation;
    for (size_t K = 0; K <= P.AnswerKeys.size(); ++K) {
      if (Own)
        Pool.Excluded.push_back(Pool.X.size());
      Pool.add(K == 0 ? P.Keys[Layer] : P.AnswerKeys[K - 1][Layer],
               Pool.BaseWeight);
    }
  }
  Pool.NBase = Pool.X.size();
  std::vector<const std::vector<float> *> Extra;
  for (size_t R = 0; R < StatementKeys.size(); ++R)
    if (R != FactIndex)
      for (const auto &Pos : StatementKeys[R])
        Extra.push_back(&Pos[Layer]);
  for (const auto &W : Written)
    Extra.push_back(&W[Layer]);
  for (const std::vector<float> *X : Extra)
    Pool.add(*X, 1.0 / double(Extra.size()));
  // The inputs the statement check found this fact's features firing on.
  if (FactIndex < Repairs.size())
    for (const auto &X : Repairs[FactIndex])
      Pool.add(X[Layer], RepairWeight / double(Repairs[FactIndex].size()));
  return Pool;
}

std::vector<std::vector<std::vector<float>>>
Editor::Impl::pieceElsewhereKeys(int32_t Piece, ArrayRef<TrialFeature> Trials) {
  static constexpr const char *Beginnings[] = {"He", "The", "It was",  "She",
                                               "A",  "We",  "This is", "They"};
  std::vector<std::vector<std::vector<float>>> Out;
  for (const char *B : Beginnings) {
    std::vector<int32_t> Ids = Tok.encode(B);
    Ids.push_back(Piece);
    Out.push_back(captureKeys(*M, Ids, Trials));
  }
  return Out;
}

std::vector<float>
Editor::Impl::writeDirection(unsigned Layer, ArrayRef<int32_t> Ctx,
                             ArrayRef<TrialFeature> Trials,
                             ArrayRef<int32_t> Raise, ArrayRef<int32_t> Lower,
                             double &Saturated) {
  // Measured in the space the LM head reads (after the final norm): the
  // state y of the same norm as the model's own at Ctx that maximises the
  // goal (log p of the raised pieces; for DELETE, -log of the lowered
  // answers' total), by gradient ascent from the model's state. A write
  // that dominates the residual ends up pointing the logits along y, so the
  // target wins for large strengths; the final norm's weights FN (and
  // Gemma's post-FFN norm's) are divided out on the way back.
  size_t D = hidden(), V = M->config().VocabSize;
  ForwardOptions O = trialOptions(*M, Trials);
  Session Sess(*M, 1);
  ForwardResult R = Sess.run(Ctx, O);
  // x: the residual's direction, rms 1; y = FN * x is what the LM head
  // reads. Start from the model's own state.
  ArrayRef<float> FN = M->finalNorm();
  double MeanFN = 0;
  for (float W : FN)
    MeanFN += std::fabs(W) / FN.size();
  auto SafeFN = [&](size_t I) {
    return std::max(std::fabs(double(FN[I])), 0.1 * MeanFN) *
           (FN[I] < 0 ? -1 : 1);
  };
  std::vector<double> X(D);
  for (size_t I = 0; I < D; ++I)
    X[I] = R.FinalNormLast[I] / SafeFN(I);
  auto Renorm = [&] {
    double N = 0;
    for (double V : X)
      N += V * V;
    N = std::sqrt(N / D);
    for (double &V : X)
      V /= N > 0 ? N : 1;
  };
  Renorm();
  const WeightMatrix &U = M->lmHead();
  std::vector<float> Logits(V), YF(D), GF(V), GradF(D);
  std::vector<double> Grad(D);
  for (unsigned Step = 0; Step < 80; ++Step) {
    for (size_t I = 0; I < D; ++I)
      YF[I] = float(X[I] * FN[I]);
    matmulNT(YF.data(), 1, D, U, 0, V, Logits.data(), V);
    std::vector<double> P = softmax(Logits);
    Saturated = Raise.empty() ? 1.0 : P[Raise[0]];
    // d goal / d logits: e_raise/|raise| - p, or q_lower - p (q: p
    // restricted to the lowered answers, renormalised).
    std::vector<double> G(V, 0);
    if (!Raise.empty()) {
      for (int32_t T : Raise)
        G[T] += 1.0 / Raise.size();
      for (size_t T = 0; T < V; ++T)
        G[T] -= P[T];
    } else {
      double PS = 0;
      for (int32_t T : Lower)
        PS += P[T];
      for (size_t T = 0; T < V; ++T)
        G[T] = P[T];
      for (int32_t T : Lower)
        G[T] -= P[T] / std::max(PS, 1e-30);
    }
    // Grad = (G U) * FN: the head's rows weighted by G, in one pass.
    for (size_t T = 0; T < V; ++T)
      GF[T] = std::fabs(G[T]) > 1e-9 ? float(G[T]) : 0.0f;
    std::fill(GradF.begin(), GradF.end(), 0.0f);
    matmulNN(GF.data(), 1, V, U, 0, V, 0, D, GradF.data(), D);
    for (size_t I = 0; I < D; ++I)
      Grad[I] = double(GradF[I]) * FN[I];
    double GN = 0;
    for (double V : Grad)
      GN += V * V;
    GN = std::sqrt(GN);
    if (GN < 1e-12)
      break;
    for (size_t I = 0; I < D; ++I)
      X[I] += 0.3 * std::sqrt(double(D)) * Grad[I] / GN;
    Renorm();
  }
  const std::vector<float> &Post = M->layer(Layer).PostFFNNorm;
  bool PostNorm = M->config().PostNorms && !Post.empty();
  double MeanPost = 0;
  for (float W : Post)
    MeanPost += std::fabs(W) / std::max<size_t>(Post.size(), 1);
  // Gemma norms the FFN's output and multiplies it by the post-FFN norm's
  // weights before adding it: divide them out.
  std::vector<float> Out(D);
  double Norm = 0;
  for (size_t I = 0; I < D; ++I) {
    // x itself, not the move from the state to it: the residual plus s x
    // tends to x as the strength s grows, so the balancer's search is
    // monotone at large strengths.
    double W = X[I];
    if (PostNorm)
      W /= std::max(std::fabs(double(Post[I])), 0.1 * MeanPost) *
           (Post[I] < 0 ? -1 : 1);
    Out[I] = float(W);
    Norm += W * W;
  }
  Norm = std::sqrt(Norm);
  for (float &X : Out)
    X = float(X / (Norm > 0 ? Norm : 1));
  return Out;
}

Expected<bool> Editor::Impl::untieOutput() {
  // A lifted row of a tied matrix would also be the token's input
  // embedding: every text ending in that token would then predict the
  // lifted pieces (measured on tiny-gemma3: "He chose" answered 'id' at
  // 0.90 after Atlantis/Poseidon).
  if (Scratch.find(TensorRole::LMHead))
    return false;
  PatchBuilder B(Scratch);
  if (Expected<std::string> Made = B.untieOutput(); !Made)
    return Made.takeError();
  if (Error E = Scratch.push(B.finish()))
    return std::move(E);
  if (Error E = M->reload())
    return std::move(E);
  return true;
}

const std::vector<float> &Editor::Impl::biasVector(unsigned Layer) {
  if (BiasVectors.empty())
    BiasVectors.resize(M->numLayers());
  std::vector<float> &Out = BiasVectors[Layer];
  if (!Out.empty())
    return Out;
  // min E[(b.x - 1)^2] + lambda |b|^2: (E[x x^T] + lambda I) b = E[x].
  const LayerStats &St = Stats[Layer];
  size_t D = St.D;
  std::vector<double> A = St.Second, B = St.Mean;
  addTraceRidge(A, D);
  if (!solveSPD(A, B, D))
    B.assign(D, 0.0);
  Out.assign(B.begin(), B.end());
  return Out;
}

void Editor::Impl::addHeadRow(ArrayRef<double> R, double Sign) {
  size_t D = R.size();
  for (size_t I = 0; I < D; ++I) {
    HeadTrace += Sign * R[I] * R[I];
    for (size_t J = 0; J < D; ++J)
      HeadSecond[I * D + J] += Sign * R[I] * R[J];
  }
}

std::optional<std::vector<double>> Editor::Impl::leastUsedDirection() {
  size_t D = hidden(), V = M->config().VocabSize;
  const WeightMatrix &U = M->lmHead();
  if (HeadSecond.empty()) {
    // The output rows' second moment, once; each lift updates it.
    HeadSecond.assign(D * D, 0);
    HeadTrace = 0;
    std::vector<double> Row(D);
    for (size_t T = 0; T < V; ++T) {
      for (size_t I = 0; I < D; ++I)
        Row[I] = U.at(T, I);
      addHeadRow(Row, 1);
    }
  }
  double TrY = 0;
  for (size_t I = 0; I < D; ++I)
    TrY += Finals.Second[I * D + I];
  std::vector<double> A(D * D, 0);
  for (size_t K = 0; K < D * D; ++K)
    A[K] = Finals.Second[K] / TrY + HeadSecond[K] / HeadTrace;
  for (size_t I = 0; I < D; ++I)
    A[I * D + I] += 1e-9;
  std::vector<double> E(D);
  for (size_t I = 0; I < D; ++I)
    E[I] = 1.0 + 0.01 * double(I % 7);
  for (unsigned It = 0; It < 40; ++It) {
    if (!solveSPD(A, E, D))
      return std::nullopt;
    double N = 0;
    for (double X : E)
      N += X * X;
    N = std::sqrt(N);
    for (double &X : E)
      X /= N;
  }
  return E;
}

Error Editor::Impl::liftRow(int32_t Token, size_t Fact, raw_ostream &Rec) {
  // A piece whose output row no final state makes likely (a token the
  // model never learned to emit) gets a lifted row: its own plus c e, with
  // e the direction least used by ordinary final states and by every output
  // row (so that ordinary text does not raise it, and writing along it
  // raises no other token; rows lifted before weigh in as rows), and c such
  // that a final state along e gives the piece a logit above any the
  // sample's prompts gave their answers.
  Expected<bool> Untied = untieOutput();
  if (!Untied)
    return Untied.takeError();
  size_t D = hidden();
  const WeightMatrix &U = M->lmHead();
  std::optional<std::vector<double>> Least = leastUsedDirection();
  if (!Least)
    return makeError("cannot lift the output row of '{0}'", text({Token}));
  const std::vector<double> &E = *Least;
  size_t Big = 0;
  for (size_t I = 1; I < D; ++I)
    if (std::fabs(E[I]) > std::fabs(E[Big]))
      Big = I;
  double Sign = E[Big] < 0 ? -1 : 1;
  double Radius = Finals.Radius / std::max(Finals.Count, 1.0);
  double C = (std::max(MaxTopLogit, 0.0) + 8.0) / Radius;
  const TensorRecord *T = Scratch.find(TensorRole::LMHead);
  PlannedRow P;
  P.UntieFirst = *Untied;
  P.Fact = Fact;
  P.Tensor = T->Name;
  P.Row = uint64_t(Token);
  P.Values.resize(D);
  for (size_t I = 0; I < D; ++I)
    P.Values[I] = float(U.at(size_t(Token), I) + Sign * C * E[I]);
  // The moment follows the row: the old one out, the lifted one in.
  std::vector<double> Row(D);
  for (size_t I = 0; I < D; ++I)
    Row[I] = U.at(size_t(Token), I);
  addHeadRow(Row, -1);
  for (size_t I = 0; I < D; ++I)
    Row[I] = P.Values[I];
  addHeadRow(Row, 1);
  PatchBuilder B(Scratch);
  if (Error Err = B.setRow(P.Tensor, P.Row, P.Values))
    return Err;
  if (Error Err = Scratch.push(B.finish()))
    return Err;
  if (Error Err = M->reload())
    return Err;
  Rec << formatv("; lifted the output row of '{0}' by {1:F2}", text({Token}),
                 C);
  if (*Untied)
    Rec << " (the output matrix untied from the embedding first)";
  Lifted.push_back(std::move(P));
  return Error::success();
}

unsigned Editor::Impl::chooseLayer(const Fact &F,
                                   ArrayRef<TrialFeature> Accepted,
                                   std::string &Why) {
  // The layer (upper half) where the separator keeps the fact's key
  // furthest above the nearest other prompts' keys.
  std::vector<std::vector<float>> Keys =
      captureKeys(*M, F.Prompts.front(), Accepted);
  unsigned Best = unsigned(M->numLayers() - 1);
  double BestMargin = -1e30;
  raw_string_ostream OS(Why);
  for (unsigned L = unsigned(M->numLayers() / 2); L < M->numLayers(); ++L) {
    std::vector<const SamplePrompt *> G = guards(F, L, Keys[L], 16);
    std::vector<std::vector<float>> Neg;
    for (const SamplePrompt *P : G)
      Neg.push_back(P->Keys[L]);
    std::vector<double> Sep = fitSeparator(Stats[L], Keys[L], Neg);
    std::vector<float> SepF(Sep.begin(), Sep.end());
    double K = dot(SepF, Keys[L]), MaxNeg = -1e30;
    for (const std::vector<float> &X : Neg)
      MaxNeg = std::max(MaxNeg, dot(SepF, X));
    double Margin = K - MaxNeg;
    OS << formatv(" L{0}:{1:F2}", L, Margin);
    if (Margin > BestMargin)
      BestMargin = Margin, Best = L;
  }
  return Best;
}

void Editor::Impl::saturate(TrialFeature &T, std::optional<TrialFeature> &Cap,
                            double &ActKey, ArrayRef<double> Sep, double KS,
                            unsigned Layer, ArrayRef<float> Key,
                            double Sharp) {
  // A later piece's feature keyed on the canonical prompt and the earlier
  // pieces responds to the same position under another wording of the
  // prompt with only part of its key's pre-activation (r = g.x / g.k: 0.7
  // to 0.85 under the held-out prompt for most later pieces of tiny-llama's
  // 10 facts, keys at cosine 0.99 and above: the separator leans on small
  // differences), and the balancer's smallest sufficient strength leaves no
  // room: the piece was lost there. Two features with the same up and down
  // vectors, the second subtracted, gates a (r - c b.x / b.k) at c =
  // SaturateFrom and SaturateAt (b: the layer's bias stand-in), write
  // act(a (r - c1)) - act(a (r - c2)): zero for r below c1, the key's
  // write for r from about c2 up (a rewording, a key above its own as
  // well), linear between. Ordinary inputs sit near r = -1, where both
  // are ~0. Measured on tiny-llama (fictional facts in one INSERT): 10
  // facts paraphrase 1/10 -> 3/10, trained answers kept 1159 -> 1161 of
  // 1161, mean KL 0.077 -> 0.0076; 61 facts 59 -> 60 written whole,
  // paraphrase 3 -> 7, kept 1157 -> 1157, KL 0.478 -> 0.220. Not where
  // the FFN's output is normed (Gemma): there the pair cost tiny-gemma3's
  // one fact 4 more trained answers (1155 kept), mean KL 0.0013 -> 0.13,
  // and three times the CPU time, for no paraphrase.
  const std::vector<float> &B = biasVector(Layer);
  double BK = dot(B, Key);
  if (!(BK > 0))
    return;
  double A = Sharp / (1 - SaturateFrom);
  TrialFeature Second = T;
  for (size_t I = 0; I < Sep.size(); ++I) {
    double R = Sep[I] / KS, Bias = B[I] / BK;
    T.Gate[I] = float(A * (R - SaturateFrom * Bias));
    Second.Gate[I] = float(A * (R - SaturateAt * Bias));
  }
  roundTo(ffnType(Layer), T.Gate);
  roundTo(ffnType(Layer), Second.Gate);
  T.Fire = dot(T.Gate, Key);
  Second.Fire = dot(Second.Gate, Key);
  float G1 = float(T.Fire), U1 = float(dot(T.Up, Key));
  float G2 = float(Second.Fire), U2 = U1;
  activateAndMultiply(M->config().Act, &G1, &U1, 1);
  activateAndMultiply(M->config().Act, &G2, &U2, 1);
  ActKey = double(G1) - double(G2);
  Cap = std::move(Second);
}

/// Step's feature at layer L, gates of sharpness Sharp: the gate fitted
/// to fire on the step's key (and its paraphrases') and stay quiet on the
/// layer's negatives, the fact's other positions and (a later piece's) the
/// piece after other words, the up vector whitened against the same, the
/// write direction (Saturated: how much of the piece's probability it can
/// reach). FitNote gets the fit's record.
Expected<PiecePart> Editor::Impl::piecePart(const FactJob &Job,
                                            const PieceStep &Step, unsigned L,
                                            double Sharp, double &Saturated,
                                            std::string &FitNote) {
  EditKind Kind = Job.Kind;
  const Fact &F = *Job.F;
  size_t FactIndex = Job.FactIndex, J = Step.J, Pieces = Job.Pieces;
  ArrayRef<std::vector<std::vector<float>>> PosKeys = Step.PosKeys;
  const auto &ParaKeys = Step.ParaKeys;
  const auto &Elsewhere = Step.Elsewhere;
  PiecePart P;
  const std::vector<float> &Key = Step.Keys[L];
  std::vector<std::vector<float>> Sib;
  for (size_t K = 0; K < PosKeys.size(); ++K)
    if (K != J)
      Sib.push_back(PosKeys[K][L]);
  std::vector<std::vector<float>> Pos{Key};
  for (const auto &PK : ParaKeys)
    Pos.push_back(PK[L]);
  NegativePool Pool = negatives(F, FactIndex, L);
  for (const auto &X : Elsewhere)
    Pool.add(X[L], 1.0 / double(Elsewhere.size()));
  GateFit Fit = fitGate(Stats[L], Pos, Pool, Sib);
  std::vector<double> &Sep = Fit.G;
  FitNote = formatv(" (fit: {0} reweighting rounds, {1} negatives "
                    "above the margin, worst {2:F2})",
                    Fit.Rounds, Fit.Violators, Fit.WorstNegative)
                .str();
  std::vector<float> SepF(Sep.begin(), Sep.end());
  double KS = dot(SepF, Key);
  if (!(KS > 0))
    return makeError("the key of '{0}' at layer {1} cannot be told "
                     "apart from the layer's ordinary inputs",
                     F.Entity, L);
  // Scaled so that the key's gate pre-activation is Sharp.
  P.T.Layer = L;
  P.T.Gate.resize(Sep.size());
  for (size_t I = 0; I < Sep.size(); ++I)
    P.T.Gate[I] = float(Sep[I] * Sharp / KS);
  roundTo(ffnType(L), P.T.Gate);
  P.T.Fire = dot(P.T.Gate, Key);
  // up: the key whitened against the inputs the feature must stay
  // quiet on (fitQuietUp), 1 at the key: a second test of the key
  // beside the gate. Measured on tiny-llama (fictional facts in one
  // INSERT; before, up was the layer's mean input direction scaled to
  // 1 at the key): 10 facts keep 1158 of 1161 trained answers instead
  // of 1154, mean KL 0.087 instead of 0.950; all 61 go through where
  // the mean direction stopped at row 36. On tiny-gemma3 (before, up =
  // gate), each of the 61 facts alone: 58 written against 59, trained
  // answers kept 1122 on average against 1082.
  P.T.Up = fitQuietUp(Stats[L], Pos, Pool, Sib);
  roundTo(ffnType(L), P.T.Up);
  float G = float(dot(P.T.Gate, Key)), U = float(dot(P.T.Up, Key));
  activateAndMultiply(M->config().Act, &G, &U, 1);
  P.ActKey = G;
  if (Kind != EditKind::Delete && J > 0 && J < Pieces &&
      !M->config().PostNorms)
    saturate(P.T, P.Cap, P.ActKey, Sep, KS, L, Key, Sharp);
  P.Dir = writeDirection(L, Step.Ctx, Step.Trials, Step.Raise, Step.Lower,
                         Saturated);
  return std::move(P);
}

/// The step's features (Parts) with down vectors of strength S in place:
/// whether the step's goal is met (the piece the greedy choice at Need at
/// least; DELETE: the old answer gone), the outcome, and the features.
std::tuple<bool, Outcome, std::vector<TrialFeature>>
Editor::Impl::tryStrength(const FactJob &Job, const PieceStep &Step,
                          ArrayRef<PiecePart> Parts, double S, double Need) {
  EditKind Kind = Job.Kind;
  const Outcome &Before = Job.Before;
  const std::vector<int32_t> &Suppress = Job.Suppress;
  double Goal = Job.Goal;
  int32_t Want = Step.Want;
  const std::vector<int32_t> &Ctx = Step.Ctx;
  std::vector<TrialFeature> All = Step.Trials, Cs;
  for (const PiecePart &P : Parts) {
    TrialFeature C = P.T;
    C.Down.resize(P.Dir.size());
    for (size_t I = 0; I < P.Dir.size(); ++I)
      C.Down[I] = float(P.Dir[I] * S / P.ActKey);
    roundTo(ffnType(C.Layer), C.Down);
    if (P.Cap) {
      TrialFeature Cap = *P.Cap;
      Cap.Down = C.Down;
      for (float &X : Cap.Down)
        X = -X;
      All.push_back(Cap);
      Cs.push_back(std::move(Cap));
    }
    All.push_back(C);
    Cs.push_back(std::move(C));
  }
  // DELETE: the old answer below 1 - Goal (0.005 by default), and
  // none of the relation's other answers in its place.
  bool Del = Kind == EditKind::Delete;
  Outcome O = outcome(Ctx, All, Del ? Before.Top : Want);
  bool Ok = Del ? !is_contained(Suppress, O.Top) &&
                      O.Top != Before.Top && O.PWant <= 1 - Goal
                : O.Top == Want && O.PWant >= Need;
  return std::make_tuple(Ok, O, Cs);
}

/// Sets up step J of the fact: its context, the features in place, what
/// its write raises and lowers, and the keys it is fitted to. False when
/// the step is not needed (the end of the word, where the model already
/// ends it).
Expected<bool>
Editor::Impl::beginPieceStep(const FactJob &Job, size_t J,
                             ArrayRef<std::vector<std::vector<float>>> PosKeys,
                             ArrayRef<TrialFeature> Mine, PieceStep &Step) {
  const Fact &F = *Job.F;
  Step.J = J;
  Step.PosKeys = PosKeys;
  std::vector<int32_t> &Ctx = Step.Ctx;
  Ctx.assign(Job.Prompt.begin(), Job.Prompt.end());
  Ctx.insert(Ctx.end(), F.Target.begin(), F.Target.begin() + J);
  std::vector<TrialFeature> &Trials = Step.Trials;
  Trials.assign(Job.Accepted.begin(), Job.Accepted.end());
  Trials.insert(Trials.end(), Mine.begin(), Mine.end());
  int32_t &Want = Step.Want;
  if (Job.Kind != EditKind::Delete && J == Job.Pieces) {
    std::vector<double> P = softmax(logits(Ctx, Trials));
    int32_t Top = int32_t(std::max_element(P.begin(), P.end()) - P.begin());
    if (!continues(Top))
      return false;
    for (size_t T = 0; T < P.size(); ++T)
      if (!continues(int32_t(T)) && (Want < 0 || P[T] > P[Want]))
        Want = int32_t(T);
    Step.Raise.push_back(Want);
  } else if (Job.Kind == EditKind::Delete) {
    Step.Lower = Job.Suppress;
    Step.Lower.push_back(Job.Before.Top); // the answer counts twice
  } else {
    Want = F.Target[J];
    Step.Raise.push_back(Want);
    double Sat = 0;
    writeDirection(Job.Layer, Ctx, Trials, Step.Raise, Step.Lower, Sat);
    if (Sat < (J == 0 ? 0.999 : 0.9))
      if (Error E = liftRow(Want, Job.FactIndex, *Job.Rec))
        return std::move(E);
  }
  Step.Keys = captureKeys(*M, Ctx, Trials);
  // A later piece's feature is keyed on a state whose last token (the
  // piece before) weighs most: the same token after other words is a
  // negative, or the feature fires wherever that token ends a text
  // ("He chose" answered Poseidon's 'id' after 'ose').
  if (J > 0)
    Step.Elsewhere = pieceElsewhereKeys(Ctx.back(), Trials);
  // The same position under the relation's other prompts (paraphrases):
  // the gate is fitted to fire there too.
  for (size_t P = 1; P < F.Prompts.size(); ++P) {
    std::vector<int32_t> PC(F.Prompts[P].begin(), F.Prompts[P].end());
    PC.insert(PC.end(), F.Target.begin(), F.Target.begin() + J);
    Step.ParaKeys.push_back(captureKeys(*M, PC, Trials));
  }
  return true;
}

/// Adds the piece's feature at layer L to the search's parts.
Error Editor::Impl::addPieceLayer(const FactJob &Job, const PieceStep &Step,
                                  PieceSearch &S, unsigned L, double Sharp) {
  Expected<PiecePart> P =
      piecePart(Job, Step, L, Sharp, S.Saturated, S.FitNote);
  if (!P)
    return P.takeError();
  S.Parts.push_back(std::move(*P));
  return Error::success();
}

/// The strength doubled from a tenth of the key's norm (ResNorm) while it
/// helps, until the goal is met: the bracket (Lo, Hi] and the last trial.
void Editor::Impl::doubleStrength(const FactJob &Job, const PieceStep &Step,
                                  PieceSearch &S, double ResNorm) {
  S.Lo = 0, S.Hi = 0.1 * ResNorm;
  std::tie(S.Ok, S.O, S.Cs) = tryStrength(Job, Step, S.Parts, S.Hi, S.Need);
  // Progress is the log-probability of the piece (for DELETE, of the
  // answer going down); four doublings without any stop the search.
  auto Score = [&](const Outcome &X) {
    // (The logit margin while the probability underflows.)
    double LogP = X.PWant > 1e-12 ? std::log(X.PWant) : -28 + X.Margin;
    return Job.Kind == EditKind::Delete ? -LogP : LogP;
  };
  double BestP = Score(S.O);
  unsigned Flat = 0;
  // Bounded: a write ten thousand times the key's norm only saturates the
  // norms after it (unbounded, failing pieces of tiny-gemma3 ran to
  // strengths of 1e9 before giving up).
  const double MaxStrength = 1e4 * ResNorm;
  while (!S.Ok && S.Hi * 2 <= MaxStrength && Flat < 4) {
    S.Lo = S.Hi, S.Hi *= 2;
    std::tie(S.Ok, S.O, S.Cs) = tryStrength(Job, Step, S.Parts, S.Hi, S.Need);
    double P = Score(S.O);
    Flat = P > BestP + 0.01 ? 0 : Flat + 1;
    BestP = std::max(BestP, P);
  }
}

/// A piece that no strength brought to its goal gets more: a saturated
/// write the next layer up (else down); once every layer writes, its
/// output row lifted (once per piece) and the search begun again from the
/// step's own layer. False when nothing is left to add.
Expected<bool> Editor::Impl::widenPiece(const FactJob &Job,
                                        const PieceStep &Step, PieceSearch &S,
                                        double Sharp) {
  unsigned NumLayers = M->numLayers();
  if (S.Parts.size() >= NumLayers) {
    // Every layer writes and the piece is still short: its output row is
    // what limits it.
    if (Job.Kind == EditKind::Delete || S.LiftedHere)
      return false;
    S.LiftedHere = true;
    if (Error E = liftRow(Step.Want, Job.FactIndex, *Job.Rec))
      return std::move(E);
    S.Parts.clear();
    if (Error E = addPieceLayer(Job, Step, S, Job.Layer, Sharp))
      return std::move(E);
    if (Step.J > 0 && Step.J < Job.Pieces)
      S.Need = std::min(Job.Goal, 0.8 * S.Saturated);
    return true;
  }
  unsigned Top = 0, Bottom = NumLayers;
  for (const PiecePart &P : S.Parts)
    Top = std::max(Top, P.T.Layer), Bottom = std::min(Bottom, P.T.Layer);
  if (Bottom == 0 && Top + 1 >= NumLayers)
    return false;
  unsigned Next = Top + 1 < NumLayers ? Top + 1 : Bottom - 1;
  if (Error E = addPieceLayer(Job, Step, S, Next, Sharp))
    return std::move(E);
  return true;
}

/// Five halvings of the bracket (Lo, Hi]: the smallest strength found
/// that meets the goal, with its outcome and features.
void Editor::Impl::bisectStrength(const FactJob &Job, const PieceStep &Step,
                                  PieceSearch &S) {
  for (unsigned B = 0; B < 5 && S.Lo > 0; ++B) {
    double Mid = (S.Lo + S.Hi) / 2;
    auto [MOk, MO, MC] = tryStrength(Job, Step, S.Parts, Mid, S.Need);
    if (MOk)
      S.Hi = Mid, S.O = MO, S.Cs = MC;
    else
      S.Lo = Mid;
  }
}

/// Piece J of Job's fact (DELETE: its one step; J == Pieces: the end of the
/// word) with gates of sharpness Sharp, after the features of the earlier
/// pieces (Mine, which gets this piece's): a feature on Job.Layer whose
/// strength is searched (doubling, then bisection) until the piece is the
/// greedy choice at its goal, with a neighbouring layer added while the
/// write saturates and the piece's output row lifted once when every
/// layer writes. PosKeys are the fact's positions' keys (what a piece's
/// feature stays quiet on at the others); a step goes to StepOS, why it
/// failed to Failure.
Expected<PieceResult>
Editor::Impl::planPiece(const FactJob &Job, size_t J, double Sharp,
                        ArrayRef<std::vector<std::vector<float>>> PosKeys,
                        std::vector<TrialFeature> &Mine, raw_ostream &StepOS,
                        std::string &Failure) {
  PieceStep Step;
  Expected<bool> Needed = beginPieceStep(Job, J, PosKeys, Mine, Step);
  if (!Needed)
    return Needed.takeError();
  if (!*Needed)
    return PieceResult::Unneeded;
  // One feature per layer of the piece; a layer whose write saturates
  // (Gemma norms the FFN's output) gets a neighbour to help.
  PieceSearch S;
  if (Error E = addPieceLayer(Job, Step, S, Job.Layer, Sharp))
    return std::move(E);
  // The goal: the first piece at Goal; a later piece the greedy choice
  // with most of the probability its unembedding row can reach; the end
  // of the word, the greedy choice.
  size_t Pieces = Job.Pieces;
  S.Need = J == 0        ? Job.Goal
           : J == Pieces ? 0.0
                         : std::min(Job.Goal, 0.8 * S.Saturated);
  const std::vector<float> &Key = Step.Keys[Job.Layer];
  double ResNorm = std::sqrt(std::max(dot(Key, Key), 1e-12));
  for (;;) {
    doubleStrength(Job, Step, S, ResNorm);
    if (S.Ok)
      break;
    Expected<bool> Widened = widenPiece(Job, Step, S, Sharp);
    if (!Widened)
      return Widened.takeError();
    if (!*Widened)
      break;
  }
  // A later piece that every layer together makes the greedy choice,
  // short of the probability goal: generation needs no more (the
  // statement check then generates the whole target). Measured on
  // tiny-gemma3's 10-fact batch: 'lan' of "Atlantean" at p = 0.77.
  std::string Short;
  bool Delete = Job.Kind == EditKind::Delete;
  int32_t Want = Step.Want;
  if (!S.Ok && !Delete && J > 0 && J < Pieces && S.O.Top == Want) {
    S.Ok = true;
    S.Lo = 0;
    Short =
        formatv(" (short of p={0:F4}: accepted as the greedy choice)", S.Need)
            .str();
  }
  if (!S.Ok) {
    Failure = formatv("piece {0} '{1}' reached p={2:F4} (needs {5:F4}) at "
                      "strength {3:g} on {6} layer(s) (top '{4}')",
                      J + 1, Want >= 0 ? text({Want}) : "", S.O.PWant, S.Hi,
                      text({S.O.Top}), S.Need, S.Parts.size())
                  .str();
    return PieceResult::Failed;
  }
  bisectStrength(Job, Step, S);
  std::string LayersText;
  for (const PiecePart &P : S.Parts)
    LayersText += (LayersText.empty() ? "" : ",") + std::to_string(P.T.Layer);
  StepOS << formatv(" piece {0} '{1}' at layer {6}: strength {2:g} in "
                    "({3:g}, {2:g}], p={4:F4} top '{5}'{8}{7};",
                    J + 1, Want >= 0 ? text({Want}) : text({S.O.Top}), S.Hi,
                    S.Lo, S.O.PWant, text({S.O.Top}), LayersText, S.FitNote,
                    Short);
  for (TrialFeature &C : S.Cs)
    Mine.push_back(std::move(C));
  return PieceResult::Written;
}

/// The keys (every layer) of the fact's own positions, the prompt's last
/// and after each piece, with Job's accepted features and the last round's
/// (Previous) in place, as they shift the keys of the positions after
/// them: what a piece's feature must stay quiet on at the others.
std::vector<std::vector<std::vector<float>>>
Editor::Impl::factPositionKeys(const FactJob &Job,
                               ArrayRef<TrialFeature> Previous) {
  const Fact &F = *Job.F;
  std::vector<int32_t> Full(Job.Prompt.begin(), Job.Prompt.end());
  Full.insert(Full.end(), F.Target.begin(), F.Target.end());
  std::vector<TrialFeature> With(Job.Accepted.begin(), Job.Accepted.end());
  With.insert(With.end(), Previous.begin(), Previous.end());
  std::vector<std::vector<std::vector<float>>> All =
      capturePositionKeys(*M, Full, With);
  return {All.end() - (Job.Pieces + 1), All.end()};
}

/// Whether the whole target is generated greedily with every feature of
/// the fact (Mine) in place, the word ended after it (a later piece's
/// feature must not derail an earlier one); else Failure says where not.
bool Editor::Impl::generatesWhole(const FactJob &Job,
                                  ArrayRef<TrialFeature> Mine,
                                  std::string &Failure) {
  const Fact &F = *Job.F;
  std::vector<TrialFeature> All(Job.Accepted.begin(), Job.Accepted.end());
  All.insert(All.end(), Mine.begin(), Mine.end());
  std::vector<int32_t> Ctx(Job.Prompt.begin(), Job.Prompt.end());
  for (size_t J = 0; J <= Job.Pieces; ++J) {
    std::vector<float> L = logits(Ctx, All);
    int32_t Top = int32_t(argmax(L));
    if (J < Job.Pieces ? Top != F.Target[J] : continues(Top)) {
      Failure = formatv("greedy generation goes '{0}' after '{1}'",
                        text({Top}),
                        text(ArrayRef<int32_t>(F.Target).take_front(J)))
                    .str();
      return false;
    }
    Ctx.push_back(Top);
  }
  return true;
}

/// Whether every guard keeps its answer, its probability moved by at most
/// the tolerance, with the fact's features (Mine) in place; the round's
/// line (its steps, the guards kept and the largest move) goes to the
/// record.
bool Editor::Impl::guardsKept(const FactJob &Job,
                              ArrayRef<const SamplePrompt *> Guards,
                              ArrayRef<Outcome> GuardBefore,
                              ArrayRef<TrialFeature> Mine, double Sharp,
                              StringRef Steps) {
  std::vector<TrialFeature> All(Job.Accepted.begin(), Job.Accepted.end());
  All.insert(All.end(), Mine.begin(), Mine.end());
  double Worst = 0;
  std::string WorstText;
  bool GuardsOk = true;
  for (size_t I = 0; I < Guards.size(); ++I) {
    Outcome A = outcome(Guards[I]->Ids, All, GuardBefore[I].Top);
    double Delta = std::fabs(A.PWant - GuardBefore[I].PTop);
    if (Delta > Worst || A.Top != GuardBefore[I].Top) {
      Worst = std::max(Worst, Delta);
      WorstText = formatv("'{0}' ({1}) {2:F4} -> {3:F4}{4}",
                          Guards[I]->Entity, Guards[I]->Relation,
                          GuardBefore[I].PTop, A.PWant,
                          A.Top != GuardBefore[I].Top
                              ? " answer changed to '" + text({A.Top}) + "'"
                              : std::string())
                      .str();
    }
    if (A.Top != GuardBefore[I].Top || Delta > Job.Opts->GuardTolerance)
      GuardsOk = false;
  }
  *Job.Rec << formatv("; sharpness {0:F1}:{1} guards {2}/{3} kept, largest "
                      "move {4:F4}{5}",
                      Sharp, Steps, GuardsOk ? Guards.size() : 0,
                      Guards.size(), Worst,
                      WorstText.empty() ? "" : " " + WorstText);
  return GuardsOk;
}

Expected<std::vector<TrialFeature>>
Editor::Impl::planFact(EditKind Kind, const Fact &F, size_t FactIndex,
                       const EditOptions &Opts,
                       ArrayRef<TrialFeature> Accepted, std::string &Record) {
  raw_string_ostream Rec(Record);
  FactJob Job;
  Job.Kind = Kind;
  Job.F = &F;
  Job.FactIndex = FactIndex;
  Job.Opts = &Opts;
  Job.Accepted = Accepted;
  Job.Rec = &Rec;
  Job.Prompt = F.Prompts.front();
  ArrayRef<int32_t> Prompt = Job.Prompt;
  std::string LayerWhy;
  Job.Layer = Opts.Layer ? *Opts.Layer : chooseLayer(F, Accepted, LayerWhy);
  unsigned Layer = Job.Layer;
  if (Layer >= M->numLayers())
    return makeError("layer {0} is out of range (the model has {1})", Layer,
                     M->numLayers());
  Rec << formatv("{0} '{1}' {2}", Kind == EditKind::Delete ? "delete" : "insert",
                 F.Entity, F.Relation);
  if (Kind != EditKind::Delete)
    Rec << formatv(" -> '{0}' ({1} piece{2})", F.TargetText, F.Target.size(),
                   F.Target.size() == 1 ? "" : "s");
  Rec << formatv(": layer {0}{1}", Layer,
                 LayerWhy.empty() ? std::string(" (AT LAYER)")
                                  : " (margins" + LayerWhy + ")");

  // What DELETE suppresses: the model's answer, and the answers the other
  // entities get for the relation (so that none of them takes its place).
  Job.Before = outcome(Prompt, Accepted, -1);
  const Outcome &Before = Job.Before;
  if (Kind == EditKind::Delete) {
    if (Before.PTop < 0.25)
      return makeError("matches nothing: the model has no answer for '{0}' "
                       "{1} to remove (its best guess '{2}' has probability "
                       "{3:F3})",
                       F.Entity, F.Relation, text({Before.Top}), Before.PTop);
    std::set<int32_t> Set{Before.Top};
    for (const SamplePrompt &P : Prompts)
      if (P.Relation == F.Relation)
        Set.insert(P.Answer);
    Job.Suppress.assign(Set.begin(), Set.end());
    Rec << formatv("; answer '{0}' p={1:F4}, {2} answers suppressed",
                   text({Before.Top}), Before.PTop, Job.Suppress.size());
  } else if (Kind == EditKind::Update) {
    Rec << formatv("; old answer '{0}' p={1:F4}", text({Before.Top}),
                   Before.PTop);
  }

  Job.Goal = Opts.MinProbability + (1 - Opts.MinProbability) / 2;
  Job.Pieces = Kind == EditKind::Delete ? 1 : F.Target.size();
  std::vector<TrialFeature> Mine;
  // Reference answers of the guards (before this fact).
  std::vector<float> Key0 = captureKeys(*M, Prompt, Accepted)[Layer];
  std::vector<const SamplePrompt *> Guards =
      guards(F, Layer, Key0, Opts.Guards);
  std::vector<Outcome> GuardBefore;
  for (const SamplePrompt *G : Guards)
    GuardBefore.push_back(outcome(G->Ids, Accepted, G->Answer));

  // The key's gate pre-activation: ordinary inputs then sit near -Sharp,
  // where the activation leaks act(-Sharp) / act(Sharp) of the write onto
  // every token: GELU's tail is ~1e-4 at 4, SiLU's (x sigmoid(x)) only
  // e^-Sharp, so SiLU models start sharper.
  double Sharp = M->config().Act == Activation::SiLU ? 12.0 : 4.0;
  std::string Failure;
  bool Reached = false;
  std::vector<TrialFeature> Previous; // the last round's features
  for (unsigned Round = 0; Round < 5; ++Round, Sharp *= 1.6) {
    Previous = std::move(Mine);
    Mine.clear();
    std::string Steps;
    raw_string_ostream StepOS(Steps);
    Reached = true;
    // After the target's pieces, one more step: where the model would go
    // on with the word (a continuation piece), a feature ends it with the
    // best token that does not.
    size_t NSteps = Kind == EditKind::Delete ? 1 : Job.Pieces + 1;
    std::vector<std::vector<std::vector<float>>> PosKeys;
    if (Kind != EditKind::Delete)
      PosKeys = factPositionKeys(Job, Previous);
    for (size_t J = 0; J < NSteps; ++J) {
      Expected<PieceResult> Piece =
          planPiece(Job, J, Sharp, PosKeys, Mine, StepOS, Failure);
      if (!Piece)
        return Piece.takeError();
      if (*Piece == PieceResult::Failed)
        Reached = false;
      if (*Piece != PieceResult::Written)
        break;
    }
    if (Reached && Kind != EditKind::Delete)
      Reached = generatesWhole(Job, Mine, Failure);
    if (!Reached) {
      Rec << formatv("; round {0} (sharpness {1:F1}): {2}", Round, Sharp,
                     Failure);
      continue;
    }
    if (guardsKept(Job, Guards, GuardBefore, Mine, Sharp, Steps))
      break;
    if (Round == 4)
      Rec << " (accepted: no sharper gate keeps every guard)";
  }
  if (!Reached)
    return makeError("cannot write '{0}' {1}: {2}", F.Entity, F.Relation,
                     Failure);
  if (Kind == EditKind::Delete) {
    std::vector<TrialFeature> All(Accepted.begin(), Accepted.end());
    All.insert(All.end(), Mine.begin(), Mine.end());
    Outcome A = outcome(Prompt, All, Before.Top);
    Rec << formatv("; now answers '{0}' (p={1:F4}; '{2}' p={3:F4})",
                   text({A.Top}), A.PTop, text({Before.Top}), A.PWant);
  }
  return Mine;
}

std::vector<size_t>
Editor::Impl::firing(ArrayRef<std::vector<float>> Keys,
                     ArrayRef<std::vector<TrialFeature>> PerFact,
                     size_t Except) {
  std::vector<std::pair<double, size_t>> Fired;
  for (size_t R = 0; R < PerFact.size(); ++R) {
    if (R == Except)
      continue;
    double Most = -1e30;
    for (const TrialFeature &T : PerFact[R])
      if (T.Fire > 0)
        Most = std::max(Most, M->config().PostNorms
                                  ? writeShare(T, Keys[T.Layer])
                                  : dot(T.Gate, Keys[T.Layer]) / T.Fire);
    // A tenth of the key's pre-activation already writes a visible share
    // of the (strong) down vector. Where the FFN's output is normed, what
    // counts is the write against the input: a leak of a strong down
    // vector outweighs the layer's own output once normed.
    if (Most > (M->config().PostNorms ? 0.01 : 0.1))
      Fired.push_back({-Most, R});
  }
  std::stable_sort(Fired.begin(), Fired.end());
  std::vector<size_t> Out;
  for (size_t I = 0; I < Fired.size() && I < 3; ++I)
    Out.push_back(Fired[I].second);
  return Out;
}

std::vector<size_t>
Editor::Impl::checkStatement(EditKind Kind, ArrayRef<Fact> Facts,
                             ArrayRef<std::vector<TrialFeature>> PerFact,
                             std::string &Note, std::pair<size_t, size_t> &Lost) {
  std::vector<TrialFeature> All;
  for (const std::vector<TrialFeature> &V : PerFact)
    All.insert(All.end(), V.begin(), V.end());
  std::set<size_t> Refit;
  size_t LostFacts = 0, LostGuards = 0, Blamed = 0, Unexplained = 0;
  auto Blame = [&](ArrayRef<int32_t> Ids, size_t Except) {
    std::vector<std::vector<float>> Keys = captureKeys(*M, Ids, All);
    std::vector<size_t> Who = firing(Keys, PerFact, Except);
    if (Who.empty())
      ++Unexplained;
    for (size_t R : Who) {
      Repairs[R].push_back(Keys);
      Refit.insert(R);
      ++Blamed;
    }
  };
  // The facts: whole targets greedily (DELETE: checked by its balancer).
  if (Kind != EditKind::Delete)
    for (size_t R = 0; R < Facts.size(); ++R) {
      const Fact &F = Facts[R];
      std::vector<int32_t> Ctx = F.Prompts.front();
      for (size_t J = 0; J <= F.Target.size(); ++J) {
        int32_t Top = int32_t(argmax(logits(Ctx, All)));
        bool Bad = J < F.Target.size() ? Top != F.Target[J] : continues(Top);
        if (Bad) {
          // Balanced again with the others in place, and the others
          // refitted where they fire on it.
          ++LostFacts;
          Refit.insert(R);
          Blame(Ctx, R);
          break;
        }
        Ctx.push_back(Top);
      }
    }
  // The guards: every sample prompt not edited keeps its greedy answer.
  // Run only where a feature of the statement fires on the prompt's keys
  // (its last position's and its answer pieces', as the unedited model
  // computes them): elsewhere every new feature stays below FireFloor of
  // its key's pre-activation, its activation a vanishing share of the
  // key's, and the answer is the model's.
  size_t Skipped = 0;
  for (const SamplePrompt &P : Prompts) {
    if (Edited.count({P.Entity, P.Relation}) ||
        InStatement.count({P.Entity, P.Relation}) || P.Continuation.empty())
      continue;
    double Most = -1e30;
    for (size_t K = 0; K < P.Continuation.size(); ++K) {
      const std::vector<std::vector<float>> &Keys =
          K == 0 ? P.Keys : P.AnswerKeys[K - 1];
      for (const TrialFeature &T : All)
        if (T.Fire > 0)
          Most = std::max(Most, dot(T.Gate, Keys[T.Layer]) / T.Fire);
    }
    // Gemma norms the FFN's output: there a leak of a strong down vector
    // (strengths run to thousands) outweighs the layer's own output at
    // any pre-activation, so every guard runs (measured: one fact on
    // tiny-gemma3 skipped 495 guards and lost 725 trained answers).
    if (Most < FireFloor && !M->config().PostNorms) {
      ++Skipped;
      continue;
    }
    std::vector<int32_t> Ids = P.Ids;
    Ids.insert(Ids.end(), P.Continuation.begin(), P.Continuation.end() - 1);
    std::vector<float> L = logits(Ids, All, /*All=*/true);
    size_t V = M->config().VocabSize, First = P.Ids.size() - 1;
    for (size_t K = 0; K < P.Continuation.size(); ++K) {
      ArrayRef<float> Row(&L[(First + K) * V], V);
      if (int32_t(argmax(Row)) == P.Continuation[K])
        continue;
      ++LostGuards;
      Blame(ArrayRef<int32_t>(Ids).take_front(First + K + 1), SIZE_MAX);
      break;
    }
  }
  Note = formatv("{0} fact(s) and {1} guard answer(s) lost; {2} feature "
                 "set(s) blamed, {3} loss(es) with no feature firing; {4} "
                 "guard(s) with no feature firing not run",
                 LostFacts, LostGuards, Blamed, Unexplained, Skipped)
             .str();
  Lost = {LostFacts, LostGuards};
  return std::vector<size_t>(Refit.begin(), Refit.end());
}

Editor::Editor(std::unique_ptr<Impl> I) : I(std::move(I)) {}
Editor::~Editor() = default;

const TensorView &Editor::view() const { return I->Scratch; }

Error Editor::apply(function_ref<Error(PatchBuilder &)> Edit) {
  PatchBuilder B(I->Scratch);
  if (Error E = Edit(B))
    return E;
  if (B.empty())
    return Error::success();
  if (Error E = I->Scratch.push(B.finish()))
    return E;
  I->HeadSecond.clear();
  return I->M->reload();
}

Expected<std::unique_ptr<Editor>> Editor::create(const TensorView &View,
                                                 const Tokenizer &Tok,
                                                 const Sample &S,
                                                 raw_ostream *Verbose) {
  auto I = std::make_unique<Impl>(View, Tok, Verbose);
  if (Error E = I->loadSample(S))
    return std::move(E);
  return std::unique_ptr<Editor>(new Editor(std::move(I)));
}

Expected<PlannedRow> Editor::liftOutputRow(int32_t Token,
                                           std::string &Record) {
  if (Error E = I->measureSample(Impl::SampleDepth::Finals))
    return std::move(E);
  raw_string_ostream Rec(Record);
  std::vector<PlannedRow> Before = std::move(I->Lifted);
  I->Lifted.clear();
  Error E = I->liftRow(Token, 0, Rec);
  std::vector<PlannedRow> Mine = std::move(I->Lifted);
  I->Lifted = std::move(Before);
  if (E)
    return std::move(E);
  return std::move(Mine.back());
}

void Editor::addSampleEntities(ArrayRef<std::string> Entities) {
  if (I->Pending.MeasureAtCreate)
    return;
  for (const std::string &E : Entities)
    if (!is_contained(I->Pending.Entities, E)) {
      I->Pending.Entities.push_back(E);
      I->Measured = Impl::SampleDepth::None;
    }
}

Expected<StatementPlan> Editor::plan(EditKind Kind, ArrayRef<Fact> Facts,
                                     const EditOptions &Opts,
                                     unsigned &FailedRow) {
  if (Error E = I->measureSample())
    return std::move(E);
  StatementPlan Plan;
  I->Lifted.clear();
  // Every fact's positions under every prompt, before any of the
  // statement's features.
  I->StatementKeys.assign(Facts.size(), {});
  for (size_t R = 0; R < Facts.size(); ++R)
    for (const std::vector<int32_t> &P : Facts[R].Prompts) {
      std::vector<int32_t> Full(P.begin(), P.end());
      Full.insert(Full.end(), Facts[R].Target.begin(), Facts[R].Target.end());
      std::vector<std::vector<std::vector<float>>> All =
          capturePositionKeys(*I->M, Full, {});
      size_t N = Facts[R].Target.size() + 1;
      I->StatementKeys[R].insert(I->StatementKeys[R].end(), All.end() - N,
                                 All.end());
    }
  I->Repairs.assign(Facts.size(), {});
  I->InStatement.clear();
  for (const Fact &F : Facts)
    I->InStatement.insert({F.Entity, F.Relation});
  std::vector<std::vector<TrialFeature>> PerFact(Facts.size());
  // The features of every fact but Except, in row order.
  auto Others = [&](size_t Except) {
    std::vector<TrialFeature> Out;
    for (size_t R = 0; R < PerFact.size(); ++R)
      if (R != Except)
        Out.insert(Out.end(), PerFact[R].begin(), PerFact[R].end());
    return Out;
  };
  for (size_t R = 0; R < Facts.size(); ++R) {
    std::string Record;
    Expected<std::vector<TrialFeature>> Mine =
        I->planFact(Kind, Facts[R], R, Opts, Others(R), Record);
    if (!Mine) {
      FailedRow = unsigned(R + 1);
      return Mine.takeError();
    }
    if (I->Verbose)
      *I->Verbose << "edit: " << Record << "\n";
    Plan.Record.push_back(std::move(Record));
    PerFact[R] = std::move(*Mine);
  }
  // The whole statement checked with every feature in place: a later row's
  // feature can undo an earlier fact or take a guard's answer; the facts
  // whose features fire there are refitted with that input as a negative
  // (a bounded number of rounds; a refit that fails keeps the features it
  // had).
  // The best round (fewest facts lost, then fewest guard answers) is kept:
  // a refit can cost more than it repairs.
  std::vector<std::vector<TrialFeature>> Best;
  std::pair<size_t, size_t> BestLost{SIZE_MAX, SIZE_MAX};
  unsigned BestRound = 0;
  for (unsigned Round = 0; Round <= Impl::CheckRounds; ++Round) {
    std::string Note;
    std::pair<size_t, size_t> Lost;
    std::vector<size_t> Refit =
        I->checkStatement(Kind, Facts, PerFact, Note, Lost);
    if (Lost < BestLost)
      BestLost = Lost, Best = PerFact, BestRound = Round;
    std::string Line = formatv("check round {0}: {1}; refit {2} fact(s)",
                               Round, Note, Refit.size())
                           .str();
    if (I->Verbose)
      *I->Verbose << "edit: " << Line << "\n";
    for (std::string &Rec : Plan.Record)
      Rec += "; " + Line;
    if (Refit.empty() || Round == Impl::CheckRounds)
      break;
    for (size_t R : Refit) {
      std::string Record;
      Expected<std::vector<TrialFeature>> Mine =
          I->planFact(Kind, Facts[R], R, Opts, Others(R), Record);
      if (!Mine) {
        std::string Why = toString(Mine.takeError());
        Plan.Record[R] += "; refit failed, kept: " + Why;
        if (I->Verbose)
          *I->Verbose << "edit: refit of row " << R + 1
                      << " failed, kept: " << Why << "\n";
        continue;
      }
      if (I->Verbose)
        *I->Verbose << "edit: refit: " << Record << "\n";
      Plan.Record[R] += "; refit: " + Record;
      PerFact[R] = std::move(*Mine);
    }
  }
  PerFact = std::move(Best);
  {
    std::string Line = formatv("kept the features of check round {0}",
                               BestRound)
                           .str();
    if (I->Verbose)
      *I->Verbose << "edit: " << Line << "\n";
    for (std::string &Rec : Plan.Record)
      Rec += "; " + Line;
  }
  std::vector<TrialFeature> Accepted;
  std::vector<size_t> FactOf; // Accepted[K] writes fact FactOf[K]
  for (size_t R = 0; R < Facts.size(); ++R) {
    Accepted.insert(Accepted.end(), PerFact[R].begin(), PerFact[R].end());
    FactOf.resize(Accepted.size(), R);
  }
  // The positions of the facts written, with the statement in place: what
  // later statements' features must stay quiet on.
  if (Kind != EditKind::Delete)
    for (const Fact &F : Facts) {
      std::vector<int32_t> Full = F.Prompts.front();
      Full.insert(Full.end(), F.Target.begin(), F.Target.end());
      std::vector<std::vector<std::vector<float>>> All =
          capturePositionKeys(*I->M, Full, Accepted);
      I->Written.insert(I->Written.end(), All.end() - (F.Target.size() + 1),
                        All.end());
    }
  PatchBuilder B(I->Scratch);
  for (size_t K = 0; K < Accepted.size(); ++K) {
    TrialFeature &T = Accepted[K];
    PlannedFeature F;
    F.Fact = FactOf[K];
    F.Layer = T.Layer;
    F.Slot = B.ffnWidth(T.Layer);
    F.Gate = std::move(T.Gate);
    F.Up = std::move(T.Up);
    F.Down = std::move(T.Down);
    if (Error E = B.setFeature(F.Layer, F.Slot, F.Gate, F.Up, F.Down))
      return std::move(E);
    Plan.Features.push_back(std::move(F));
  }
  Plan.Rows = std::move(I->Lifted);
  for (const Fact &F : Facts)
    I->Edited.insert({F.Entity, F.Relation});
  if (!B.empty()) {
    if (Error E = I->Scratch.push(B.finish()))
      return std::move(E);
    if (Error E = I->M->reload())
      return std::move(E);
  }
  return Plan;
}

} // namespace vindex::edit
