//===- VindexDialect.td - The vindex dialect ---------------*- tablegen -*-===//
#ifndef VINDEX_VINDEX_DIALECT
#define VINDEX_VINDEX_DIALECT

include "mlir/IR/OpBase.td"

def Vindex_Dialect : Dialect {
  let name = "vindex";
  let summary = "Store-level edits of a V-index";
  let description = [{
    One op per edit of the store: zeroing a feature, installing one into a
    slot, overwriting rows of a tensor, setting a feature's label. LQL edits
    (the `larql` dialect) lower to these once their keys and slots are known.
    Vectors are small per-edit values (`DenseElementsAttr`, or dense
    resources), never whole tensors.
  }];
  let cppNamespace = "::vindex::vx";
  let extraClassDeclaration = [{
    /// The V-index the IR runs against, when there is one (larql-opt
    /// IN.vindex ...): how passes that need the model reach it. The driver
    /// sets it on the context's dialect before the pipeline runs, so a pass
    /// named in a textual --pass-pipeline finds it too; a pass that needs
    /// it and finds none fails ("pass X needs a V-index"). Not owned.
    ::vindex::VindexSession *session() const { return Session; }
    void setSession(::vindex::VindexSession *S) { Session = S; }

  private:
    ::vindex::VindexSession *Session = nullptr;

  public:
  }];
}

class Vindex_Op<string mnemonic, list<Trait> traits = []>
    : Op<Vindex_Dialect, mnemonic, traits>;

#endif // VINDEX_VINDEX_DIALECT
