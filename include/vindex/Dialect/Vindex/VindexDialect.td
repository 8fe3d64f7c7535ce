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
}

class Vindex_Op<string mnemonic, list<Trait> traits = []>
    : Op<Vindex_Dialect, mnemonic, traits>;

#endif // VINDEX_VINDEX_DIALECT
