//===- ResolveRelations.cpp - larql-resolve-relations ---------------------===//
//
// larql.create_relation "capital" {prompt_template = "The capital of
// {entity} is"} is consumed; each fact edit that uses the relation gets
// relations = {capital = ["The capital of {entity} is"]}. A relation no
// CREATE RELATION names takes the canonical template larql-probe stored in
// the V-index's labels (`{e}` there), if the V-index is probed.
//
//===----------------------------------------------------------------------===//
#include "FactEdits.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Passes/Passes.h"
#include "vindex/Store/Labels.h"
#include "vindex/Store/Vindex.h"

#include "mlir/IR/Builders.h"

namespace vindex {
#define GEN_PASS_DEF_LARQLRESOLVERELATIONS
#include "vindex/Passes/Passes.h.inc"
} // namespace vindex

using namespace mlir;
using namespace vindex::larql;

namespace {

/// Template with larql-probe's `{e}` written as LQL's `{entity}`.
std::string asLQLTemplate(StringRef Stored) {
  std::string Out;
  size_t At = 0;
  for (size_t P; (P = Stored.find("{e}", At)) != StringRef::npos; At = P + 3)
    (Out += Stored.slice(At, P)) += "{entity}";
  Out += Stored.substr(At);
  return Out;
}

/// The canonical template larql-probe stored for Relation, if any. (Only
/// the canonical one: the held-out prompt stays for measuring paraphrase.)
std::optional<std::string> storedTemplate(const vindex::VindexSession *S,
                                          StringRef Relation) {
  const vindex::Labels *L = S ? S->vindex().labels() : nullptr;
  if (!L)
    return std::nullopt;
  std::optional<uint32_t> R = L->relation(Relation);
  if (!R)
    return std::nullopt;
  return asLQLTemplate(L->Relations[*R].Canonical);
}

struct ResolveRelations
    : vindex::impl::LarqlResolveRelationsBase<ResolveRelations> {
  void runOnOperation() override {
    auto *D = getContext().getLoadedDialect<vindex::vx::VindexDialect>();
    vindex::VindexSession *S = D ? D->session() : nullptr;
    std::map<std::string, std::vector<std::string>> Local;
    auto &Known = S ? S->relations() : Local;
    bool Failed = false;
    SmallVector<Operation *> Consumed;
    for (Operation &Op : *getOperation().getBody()) {
      if (auto C = dyn_cast<CreateRelationOp>(Op)) {
        std::vector<std::string> &T = Known[C.getName().str()];
        if (!llvm::is_contained(T, C.getPromptTemplate()))
          T.push_back(C.getPromptTemplate().str());
        Consumed.push_back(&Op);
        continue;
      }
      std::vector<vindex::FactRow> Rows;
      if (failed(vindex::factRows(&Op, Rows))) {
        Failed = true;
        continue;
      }
      if (Rows.empty())
        continue;
      std::map<std::string, Attribute> Used;
      for (const vindex::FactRow &R : Rows) {
        auto It = Known.find(R.Relation);
        if (It == Known.end())
          if (std::optional<std::string> T = storedTemplate(S, R.Relation))
            It = Known.emplace(R.Relation, std::vector<std::string>{*T})
                     .first;
        if (It == Known.end()) {
          InFlightDiagnostic Diag = vindex::factError(&Op, R.Index);
          Diag << "unknown relation '" << R.Relation << "'";
          // CREATE RELATION's name is an identifier, lower-cased; a row's
          // relation is a string, compared as written.
          auto Alike = llvm::find_if(Known, [&](const auto &K) {
            return StringRef(K.first).equals_insensitive(R.Relation);
          });
          if (Alike != Known.end())
            Diag << " (did you mean '" << Alike->first
                 << "'? CREATE RELATION lower-cases its name)";
          else
            Diag << " (no CREATE RELATION " << R.Relation
                 << " AS '... {entity} ...' before it, and no stored "
                    "template)";
          Failed = true;
          continue;
        }
        SmallVector<Attribute> T;
        for (const std::string &P : It->second)
          T.push_back(StringAttr::get(&getContext(), P));
        Used[R.Relation] = ArrayAttr::get(&getContext(), T);
      }
      SmallVector<NamedAttribute> Named;
      for (auto &[Name, T] : Used)
        Named.push_back(
            NamedAttribute(StringAttr::get(&getContext(), Name), T));
      Op.setAttr(vindex::RelationsAttr,
                 DictionaryAttr::get(&getContext(), Named));
    }
    for (Operation *Op : Consumed)
      Op->erase();
    if (Failed)
      signalPassFailure();
  }
};

} // namespace
