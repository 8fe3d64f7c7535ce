//===- PlanEdits.cpp - larql-plan-edits -----------------------------------===//
//
// larql.insert / larql.update / larql.delete of facts (with the relations'
// prompts from larql-resolve-relations) -> one vindex.install_feature per
// planned feature, its gate/up/down as dense resources, in statement order;
// the planning itself (keys, slot vectors, the balancer) is lib/Edit's.
// vindex ops already in the module (a DELETE of a layer's feature lowered
// before) are applied to the planner's view as they come, so that every
// statement is planned against what the statements before it left.
//
//===----------------------------------------------------------------------===//
#include "FactEdits.h"
#include "MemitEdits.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Edit/Editor.h"
#include "vindex/Edit/Memit.h"
#include "vindex/Exec/Applier.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Passes/Passes.h"
#include "vindex/Store/Labels.h"
#include "vindex/Store/Vindex.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

namespace vindex {
#define GEN_PASS_DEF_LARQLPLANEDITS
#include "vindex/Passes/Passes.h.inc"
} // namespace vindex

using namespace mlir;
using namespace vindex;

namespace {

struct PlanEdits : vindex::impl::LarqlPlanEditsBase<PlanEdits> {
  using LarqlPlanEditsBase::LarqlPlanEditsBase;

  void runOnOperation() override {
    // The ops that edit facts, and whether there is anything to do.
    bool Any = false;
    for (Operation &Op : *getOperation().getBody())
      Any |= Op.hasAttr(RelationsAttr);
    if (!Any)
      return;
    auto *D = getContext().getLoadedDialect<vx::VindexDialect>();
    VindexSession *S = D ? D->session() : nullptr;
    if (!S) {
      getOperation().emitError()
          << "pass " << getArgument()
          << " needs a V-index (larql-opt IN.vindex ...)";
      return signalPassFailure();
    }
    Operation *First = nullptr;
    for (Operation &Op : *getOperation().getBody())
      if (Op.hasAttr(RelationsAttr) && !First)
        First = &Op;
    // The tokenizer checks the vocabulary; the editor binds the weights
    // itself (on its scratch view), so the session's model is not loaded
    // here (binding it too cost a one-fact INSERT on tiny-gemma3 a tenth
    // of its time).
    llvm::Expected<const Tokenizer &> T = S->tokenizer();
    if (!T) {
      First->emitError() << llvm::toString(T.takeError());
      return signalPassFailure();
    }
    const Tokenizer &Tok = cantFail(S->tokenizer());

    // The sample of the key statistics: every relation the module edits.
    edit::Sample Sample;
    std::map<std::string, std::vector<std::string>> Relations;
    for (Operation &Op : *getOperation().getBody())
      if (auto R = Op.getAttrOfType<DictionaryAttr>(RelationsAttr))
        for (NamedAttribute N : R) {
          std::vector<std::string> &T = Relations[N.getName().str()];
          for (Attribute A : cast<ArrayAttr>(N.getValue()))
            if (!llvm::is_contained(T, cast<StringAttr>(A).getValue()))
              T.push_back(cast<StringAttr>(A).getValue().str());
        }
    // Every relation the session knows (CREATE RELATION so far), not only
    // the edited ones: their prompts are what the features must stay quiet
    // on, and what guards the edits.
    for (const auto &[Name, T] : S->relations())
      if (!Relations.count(Name))
        Relations[Name] = T;
    Sample.Relations.assign(Relations.begin(), Relations.end());
    // The slot method's sample only when a statement plans slots: MODE
    // memit needs it only for an output-row lift, which measures it then,
    // with the entities of the statements up to the lifting one (each
    // memit statement adds its own below).
    Sample.MeasureAtCreate =
        llvm::any_of(*getOperation().getBody(), [](Operation &Op) {
          return Op.hasAttr(RelationsAttr) && !isMemit(&Op);
        });
    // MODE memit over an input that earlier runs' memit statements made:
    // what they wrote is held as if they were this run's first statements
    // (their entities first in the sample, which is measured on the model
    // they met, as in one run of them all).
    if (llvm::any_of(*getOperation().getBody(),
                     [](Operation &Op) { return isMemit(&Op); })) {
      if (llvm::Error E = readEarlierMemit(S->view(), Memit)) {
        First->emitError() << llvm::toString(std::move(E));
        return signalPassFailure();
      }
      for (const auto &Statement : Memit.Earlier)
        for (const MemitContext::EarlierRow &R : Statement)
          if (!llvm::is_contained(Sample.Entities, R.Entity))
            Sample.Entities.push_back(R.Entity);
      if (!Memit.Earlier.empty())
        Sample.MeasureOnPatches = Memit.BeforeEarlier;
    }
    if (Sample.MeasureAtCreate)
      for (Operation &Op : *getOperation().getBody()) {
        std::vector<FactRow> Rows;
        if (Op.hasAttr(RelationsAttr) && succeeded(factRows(&Op, Rows)))
          for (const FactRow &R : Rows)
            if (!llvm::is_contained(Sample.Entities, R.Entity))
              Sample.Entities.push_back(R.Entity);
      }
    // The guard entities: the probed ones when the V-index has labels
    // (else the editor takes the vocabulary's whole words).
    if (const Labels *L = S->vindex().labels()) {
      Sample.Known = L->Entities;
      for (const RelationInfo &R : L->Relations)
        for (uint32_t E : R.Entities)
          Memit.ProbedEntities[R.Name].push_back(L->Entities[E]);
    }
    if (!Corpus.empty()) {
      auto Buf = llvm::MemoryBuffer::getFile(Corpus);
      if (!Buf) {
        First->emitError() << "cannot read corpus '" << Corpus
                           << "': " << Buf.getError().message();
        return signalPassFailure();
      }
      S->noteFileRead(Corpus);
      edit::forEachCorpusLine((*Buf)->getBuffer(), [&](StringRef L) {
        Sample.Text.push_back(L.str());
      });
    }
    Memit.Relations = Sample.Relations; // MODE memit's guards
    Memit.Known = Sample.Known;
    llvm::Expected<std::unique_ptr<edit::Editor>> Ed =
        edit::Editor::create(S->view(), Tok, Sample, S->log());
    if (!Ed) {
      First->emitError() << llvm::toString(Ed.takeError());
      return signalPassFailure();
    }

    SmallVector<Operation *> Ops;
    for (Operation &Op : *getOperation().getBody())
      Ops.push_back(&Op);
    for (Operation *Op : Ops) {
      if (Op->getDialect() && isa<vx::VindexDialect>(Op->getDialect())) {
        if (llvm::Error E = (*Ed)->apply(
                [&](PatchBuilder &B) { return applyVindexOp(Op, B); })) {
          Op->emitError() << llvm::toString(std::move(E));
          return signalPassFailure();
        }
        continue;
      }
      if (!Op->hasAttr(RelationsAttr))
        continue;
      if (failed(plan(Op, **Ed, Tok, Sample.Text)))
        return signalPassFailure();
    }
  }

  LogicalResult plan(Operation *Op, edit::Editor &Ed, const Tokenizer &Tok,
                     ArrayRef<std::string> CorpusLines) {
    std::vector<FactRow> Rows;
    if (failed(factRows(Op, Rows)))
      return failure();
    auto Relations = Op->getAttrOfType<DictionaryAttr>(RelationsAttr);
    edit::EditKind Kind = isa<larql::InsertOp>(Op)   ? edit::EditKind::Insert
                          : isa<larql::UpdateOp>(Op) ? edit::EditKind::Update
                                                     : edit::EditKind::Delete;
    edit::EditOptions Opts;
    if (auto I = dyn_cast<larql::InsertOp>(Op)) {
      if (std::optional<uint64_t> L = I.getLayer())
        Opts.Layer = unsigned(*L);
    }
    std::vector<edit::Fact> Facts;
    for (const FactRow &R : Rows) {
      auto Templates = dyn_cast_or_null<ArrayAttr>(Relations.get(R.Relation));
      if (!Templates || Templates.empty())
        return factError(Op, R.Index)
               << "relation '" << R.Relation << "' has no prompt";
      std::vector<std::string> Prompts;
      for (Attribute T : Templates)
        Prompts.push_back(cast<StringAttr>(T).getValue().str());
      std::string Why;
      FailureOr<edit::Fact> F = resolveFact(
          Tok, Ed.view().config().VocabSize, Prompts, R.Entity, R.Relation,
          Kind == edit::EditKind::Delete ? std::nullopt
                                         : std::optional<StringRef>(R.Target),
          Why);
      if (failed(F))
        return factError(Op, R.Index) << Why;
      Facts.push_back(std::move(*F));
    }
    for (const edit::Fact &F : Facts)
      Memit.Edited.emplace_back(F.Entity, F.Relation);
    if (isMemit(Op)) { // MODE memit: passes/MemitEdits.cpp
      std::vector<std::string> Entities;
      for (const edit::Fact &F : Facts)
        Entities.push_back(F.Entity);
      Ed.addSampleEntities(Entities);
      Memit.Options.Layers.assign(MemitLayers.begin(), MemitLayers.end());
      Memit.Options.Lambda = MemitLambda;
      if (MemitAt != "last" && MemitAt != "subject")
        return Op->emitError()
               << "memit-at must be last or subject, not '" << MemitAt << "'";
      if (MemitKeys != "mean" && MemitKeys != "each" && MemitKeys != "prompts")
        return Op->emitError()
               << "memit-keys must be mean, each or prompts, not '" << MemitKeys
               << "'";
      if (MemitGuards != "canonical" && MemitGuards != "all")
        return Op->emitError() << "memit-guards must be canonical or all, not '"
                               << MemitGuards << "'";
      Memit.GuardEveryPrompt = MemitGuards == "all";
      if (MemitGuardEntities != "all" && MemitGuardEntities != "probed" &&
          MemitGuardEntities != "probed-repair")
        return Op->emitError()
               << "memit-guard-entities must be all, probed or probed-repair, "
                  "not '"
               << MemitGuardEntities << "'";
      using Pairs = MemitContext::GuardPairs;
      Memit.Pairs = MemitGuardEntities == "probed" ? Pairs::Probed
                    : MemitGuardEntities == "probed-repair"
                        ? Pairs::ProbedRepair
                        : Pairs::All;
      if (Memit.Pairs != Pairs::All && Memit.ProbedEntities.empty())
        return Op->emitError()
               << "memit-guard-entities=" << MemitGuardEntities
               << ": the V-index's labels record "
                  "no relation's entities (not probed, or probed before "
                  "labels recorded them: larql-probe --force probes it "
                  "again)";
      if (MemitGuardPositions != "last" && MemitGuardPositions != "all")
        return Op->emitError()
               << "memit-guard-positions must be last or all, not '"
               << MemitGuardPositions << "'";
      Memit.GuardEveryPosition = MemitGuardPositions == "all";
      if (MemitHold != "units" && MemitHold != "true" &&
          MemitHold != "guards" && MemitHold != "false")
        return Op->emitError()
               << "memit-hold must be units (or true), guards or false, not '"
               << MemitHold << "'";
      Memit.HoldWritten = MemitHold == "false"    ? MemitContext::Hold::None
                          : MemitHold == "guards" ? MemitContext::Hold::Guards
                                                  : MemitContext::Hold::Units;
      Memit.Restat = MemitRestat;
      Memit.Options.AtSubject = MemitAt == "subject";
      Memit.Options.Keys =
          MemitKeys == "each"      ? edit::MemitOptions::KeyGroups::Each
          : MemitKeys == "prompts" ? edit::MemitOptions::KeyGroups::Prompts
                                   : edit::MemitOptions::KeyGroups::Mean;
      Memit.Corpus.assign(CorpusLines.begin(), CorpusLines.end());
      Memit.CorpusName = Corpus;
      Memit.Options.PreserveWeight = MemitPreserve;
      Memit.Options.Rounds = MemitRounds;
      Memit.Options.Repair = MemitRepair;
      Memit.Options.RepairRounds = MemitRepairRounds;
      Memit.Options.RepairGrants = MemitRepairGrants;
      if (!(MemitRepairMargin >= 0 && MemitRepairMargin < 1))
        return Op->emitError()
               << "memit-repair-margin must be at least 0 and below 1, not "
               << MemitRepairMargin;
      Memit.Options.RepairMargin = MemitRepairMargin;
      if (!(MemitMargin >= 0 && MemitMargin < 1))
        return Op->emitError()
               << "memit-margin must be at least 0 and below 1, not "
               << MemitMargin;
      Memit.Options.Margin = MemitMargin;
      if (MemitReach != "canonical" && MemitReach != "all")
        return Op->emitError() << "memit-reach must be canonical or all, not '"
                               << MemitReach << "'";
      Memit.Options.ReachAll = MemitReach == "all";
      Memit.Options.NormKeys = MemitNormKeys;
      Memit.Widen = MemitWiden;
      Memit.Options.AlphaEdit = MemitAlphaEdit;
      Memit.Options.NullThreshold = MemitNullThreshold;
      auto *D = getContext().getLoadedDialect<vx::VindexDialect>();
      Memit.Options.Jobs = Jobs ? unsigned(Jobs) : D->session()->jobs();
      Memit.StatsMode = MemitStats;
      return lowerMemit(Op, Facts, Ed, Tok, Memit, D->session()->log());
    }
    unsigned FailedRow = 0;
    llvm::Expected<edit::StatementPlan> Plan =
        Ed.plan(Kind, Facts, Opts, FailedRow);
    if (!Plan) {
      size_t Index = FailedRow ? Rows[FailedRow - 1].Index : 0;
      return factError(Op, Index) << llvm::toString(Plan.takeError());
    }
    OpBuilder B(Op);
    MLIRContext *Ctx = &getContext();
    for (const edit::PlannedRow &R : Plan->Rows) {
      if (R.UntieFirst)
        B.create<vx::UntieOutputOp>(Op->getLoc(), R.Tensor);
      std::string Name = llvm::formatv("row_{0}", R.Row).str();
      auto Ty = RankedTensorType::get({1, int64_t(R.Values.size())},
                                      Float32Type::get(Ctx));
      Attribute V = DenseF32ResourceElementsAttr::get(
          Ty, Name,
          HeapAsmResourceBlob::allocateAndCopyInferAlign(
              ArrayRef<float>(R.Values)));
      auto U = B.create<vx::UpdateWeightsOp>(Op->getLoc(), R.Tensor,
                                             int64_t(R.Row), int64_t(R.Row + 1),
                                             cast<ElementsAttr>(V));
      U->setAttr(BalanceAttr, StringAttr::get(Ctx, Plan->Record[R.Fact]));
    }
    for (const edit::PlannedFeature &F : Plan->Features)
      createInstallFeature(B, Op->getLoc(), F, "", Plan->Record[F.Fact]);
    Op->erase();
    return success();
  }

  MemitContext Memit;
};

} // namespace
