//===- VindexOps.td - vindex ops ---------------------------*- tablegen -*-===//
#ifndef VINDEX_VINDEX_OPS
#define VINDEX_VINDEX_OPS

include "vindex/Dialect/Vindex/VindexDialect.td"
include "mlir/IR/BuiltinAttributes.td"

def Vindex_RemoveFeatureOp : Vindex_Op<"remove_feature"> {
  let summary = "Zero feature `feature` of layer `layer` (gate, up and down)";
  let arguments = (ins I64Attr:$layer, I64Attr:$feature);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Vindex_InstallFeatureOp : Vindex_Op<"install_feature"> {
  let summary = "Write gate/up/down vectors into slot `slot` of layer `layer`";
  let description = [{
    `gate`, `up` and `down` are 1-D elements attributes (dense or dense
    resources) of floats, all of the same length (the hidden size).
  }];
  let arguments = (ins I64Attr:$layer, I64Attr:$slot,
                   ElementsAttr:$gate, ElementsAttr:$up, ElementsAttr:$down);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Vindex_UpdateWeightsOp : Vindex_Op<"update_weights"> {
  let summary = "Overwrite rows [row_begin, row_end) of tensor `tensor`";
  let description = [{
    `values` is a 2-D elements attribute of shape
    (row_end - row_begin) x columns.
  }];
  let arguments = (ins StrAttr:$tensor, I64Attr:$row_begin, I64Attr:$row_end,
                   ElementsAttr:$values);
  let assemblyFormat = "$tensor attr-dict";
  let hasVerifier = 1;
}

def Vindex_UntieOutputOp : Vindex_Op<"untie_output"> {
  let summary = "Give a tied-embedding model an output matrix of its own";
  let description = [{
    On a model whose LM head is its input embedding, creates `tensor`
    (lm_head.weight) as a copy of the embedding as it is; `update_weights`
    ops after it may then change output rows without changing what a token
    means as input. An error when the model already has an LM head.
  }];
  let arguments = (ins StrAttr:$tensor);
  let assemblyFormat = "$tensor attr-dict";
  let hasVerifier = 1;
}

def Vindex_SetLabelOp : Vindex_Op<"set_label"> {
  let summary = "Set label `key` of feature (layer, feature) to `value`";
  let arguments = (ins I64Attr:$layer, I64Attr:$feature, StrAttr:$key,
                   StrAttr:$value);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

#endif // VINDEX_VINDEX_OPS
