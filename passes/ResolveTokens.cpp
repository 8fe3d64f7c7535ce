//===- ResolveTokens.cpp - larql-resolve-tokens ---------------------------===//
//
// larql.infer "p" {top = 5} -> larql.infer "p" {tokens = array<i32: ...>,
// top = 5}, the ids from the V-index's tokenizer (VindexDialect::session()).
// The first pass that needs the model: the tokenizer is loaded by the
// session, once, and only when the module has a prompt to encode.
//
//===----------------------------------------------------------------------===//
#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace vindex {
#define GEN_PASS_DEF_LARQLRESOLVETOKENS
#include "vindex/Passes/Passes.h.inc"
} // namespace vindex

using namespace mlir;
using namespace vindex::larql;

namespace {

struct ResolveTokens : vindex::impl::LarqlResolveTokensBase<ResolveTokens> {
  void runOnOperation() override {
    auto *D = getContext().getLoadedDialect<vindex::vx::VindexDialect>();
    vindex::VindexSession *S = D ? D->session() : nullptr;
    if (!S) {
      getOperation().emitError()
          << "pass " << getArgument()
          << " needs a V-index (larql-opt IN.vindex ...)";
      return signalPassFailure();
    }
    bool Failed = false;
    getOperation().walk([&](Operation *Op) {
      if (!isa<InferOp, WalkOp>(Op) || Op->hasAttr("tokens"))
        return;
      auto Prompt = Op->getAttrOfType<StringAttr>("prompt");
      llvm::Expected<const vindex::Tokenizer &> Tok = S->tokenizer();
      if (!Tok) {
        Op->emitError() << llvm::toString(Tok.takeError());
        Failed = true;
        return;
      }
      std::vector<int32_t> Ids = Tok->encode(Prompt.getValue());
      if (Ids.empty()) {
        Op->emitError() << "the prompt encodes to no tokens";
        Failed = true;
        return;
      }
      Op->setAttr("tokens", DenseI32ArrayAttr::get(&getContext(), Ids));
    });
    if (Failed)
      signalPassFailure();
  }
};

} // namespace
