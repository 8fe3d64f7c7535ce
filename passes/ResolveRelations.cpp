//===- ResolveRelations.cpp - larql-resolve-relations ---------------------===//
//
// larql.create_relation "capital" {prompt_template = "The capital of
// {entity} is"} is consumed; each fact edit that uses the relation gets
// relations = {capital = ["The capital of {entity} is"]}.
//
//===----------------------------------------------------------------------===//
#include "FactEdits.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace vindex {
#define GEN_PASS_DEF_LARQLRESOLVERELATIONS
#include "vindex/Passes/Passes.h.inc"
} // namespace vindex

using namespace mlir;
using namespace vindex::larql;

namespace {

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
        if (It == Known.end()) {
          vindex::factError(&Op, R.Index)
              << "unknown relation '" << R.Relation
              << "' (no CREATE RELATION " << R.Relation
              << " AS '... {entity} ...' before it, and no stored template)";
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
