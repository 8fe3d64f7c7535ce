//===- StripQueries.cpp - larql-strip-queries ---------------------------===//
//
// Erases the larql ops that only read and print (SELECT, DESCRIBE, SHOW,
// INFER, WALK, TRACE); edits, patch blocks and COMPILE are kept in order.
//
//===----------------------------------------------------------------------===//
#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Passes/Passes.h"

namespace vindex {
#define GEN_PASS_DEF_LARQLSTRIPQUERIES
#include "vindex/Passes/Passes.h.inc"
} // namespace vindex

using namespace mlir;
using namespace vindex::larql;

namespace {

struct StripQueries : vindex::impl::LarqlStripQueriesBase<StripQueries> {
  void runOnOperation() override {
    SmallVector<Operation *> Queries;
    getOperation().walk([&](Operation *Op) {
      if (isa<SelectOp, DescribeOp, ShowOp, InferOp, WalkOp, TraceOp>(Op))
        Queries.push_back(Op);
    });
    for (Operation *Op : Queries)
      Op->erase();
  }
};

} // namespace
