//===- LarqlOps.td - larql ops -----------------------------*- tablegen -*-===//
#ifndef VINDEX_LARQL_OPS
#define VINDEX_LARQL_OPS

include "vindex/Dialect/Larql/LarqlDialect.td"
include "mlir/IR/BuiltinAttributes.td"

def Larql_SelectOp : Larql_Op<"select"> {
  let summary = "SELECT cols|* FROM table [NEAREST TO 'x' [AT LAYER n]] "
                "[WHERE e] [ORDER BY ...] [LIMIT n]";
  let description = [{
    `columns` absent means `*`. `order_by` is a list of `[column, "asc"|"desc"]`.
  }];
  let arguments = (ins StrAttr:$table, OptionalAttr<StrArrayAttr>:$columns,
                   OptionalAttr<StrAttr>:$nearest, OptionalAttr<I64Attr>:$layer,
                   OptionalAttr<ArrayAttr>:$where,
                   OptionalAttr<ArrayAttr>:$order_by,
                   OptionalAttr<I64Attr>:$limit);
  let assemblyFormat = "$table attr-dict";
  let hasVerifier = 1;
}

def Larql_DescribeOp : Larql_Op<"describe"> {
  let summary = "DESCRIBE 'x' [AT LAYER n] [SYNTAX|KNOWLEDGE|OUTPUT] "
                "[USING EMBEDDING]";
  let description = [{
    Without `using_embedding` the edges come from the entity's residual
    stream in the stored relation templates; with it, from a KNN of the
    gates with the entity's token embedding (LARQL's baseline).
  }];
  let arguments = (ins StrAttr:$entity, OptionalAttr<I64Attr>:$layer,
                   OptionalAttr<StrAttr>:$band, UnitAttr:$using_embedding);
  let assemblyFormat = "$entity attr-dict";
  let hasVerifier = 1;
}

def Larql_ShowOp : Larql_Op<"show"> {
  let summary = "SHOW RELATIONS|LAYERS|ENTITIES|FEATURES n|PATCHES|MODEL "
                "[WHERE e] [LIMIT n]";
  let description = [{
    `where` and `limit` (as on larql.select) filter the rows of SHOW
    RELATIONS, ENTITIES and FEATURES, on the columns of their results.
  }];
  let arguments = (ins StrAttr:$what, OptionalAttr<I64Attr>:$layer,
                   OptionalAttr<ArrayAttr>:$where,
                   OptionalAttr<I64Attr>:$limit);
  let assemblyFormat = "$what attr-dict";
  let hasVerifier = 1;
}

def Larql_InferOp : Larql_Op<"infer"> {
  let summary = "INFER 'prompt' [TOP n] [GENERATE m]";
  let arguments = (ins StrAttr:$prompt, I64Attr:$top,
                   OptionalAttr<I64Attr>:$generate,
                   OptionalAttr<DenseI32ArrayAttr>:$tokens);
  let assemblyFormat = "$prompt attr-dict";
  let hasVerifier = 1;
}

def Larql_WalkOp : Larql_Op<"walk"> {
  let summary = "WALK 'prompt' [TOP n] [WITH K k]";
  let arguments = (ins StrAttr:$prompt, I64Attr:$top, OptionalAttr<I64Attr>:$k,
                   OptionalAttr<DenseI32ArrayAttr>:$tokens);
  let assemblyFormat = "$prompt attr-dict";
  let hasVerifier = 1;
}

def Larql_TraceOp : Larql_Op<"trace"> {
  let summary = "TRACE 'prompt'";
  let arguments = (ins StrAttr:$prompt);
  let assemblyFormat = "$prompt attr-dict";
}

def Larql_InsertOp : Larql_Op<"insert"> {
  let summary = "INSERT INTO edges VALUES (k='v', ...)[, ...] [AT LAYER n] "
                "[MODE m]";
  let description = [{ `rows` is a list of dictionaries, one per VALUES tuple. }];
  let arguments = (ins ArrayAttr:$rows, OptionalAttr<I64Attr>:$layer,
                   OptionalAttr<StrAttr>:$mode);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Larql_DeleteOp : Larql_Op<"delete"> {
  let summary = "DELETE FROM edges WHERE e";
  let arguments = (ins ArrayAttr:$where);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Larql_UpdateOp : Larql_Op<"update"> {
  let summary = "UPDATE edges SET k='v'[, ...] WHERE e";
  let arguments = (ins DictionaryAttr:$set, ArrayAttr:$where);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Larql_CreateRelationOp : Larql_Op<"create_relation"> {
  let summary = "CREATE RELATION name AS 'template with {entity}'";
  let arguments = (ins StrAttr:$name, StrAttr:$prompt_template);
  let assemblyFormat = "$name attr-dict";
  let hasVerifier = 1;
}

def Larql_CompileOp : Larql_Op<"compile"> {
  let summary = "COMPILE CURRENT INTO VINDEX 'path' | INTO MODEL 'path' "
                "FORMAT gguf|safetensors [TYPE t]";
  let description = [{
    `type` (FORMAT gguf only) is the element type of the GGUF's matrices:
    auto (each matrix's stored type), f32, f16, bf16 or q8_0.
  }];
  let arguments = (ins StrAttr:$target, StrAttr:$path,
                   OptionalAttr<StrAttr>:$format,
                   OptionalAttr<StrAttr>:$type);
  let assemblyFormat = "$target $path attr-dict";
  let hasVerifier = 1;
}

def Larql_BeginPatchOp : Larql_Op<"begin_patch"> {
  let summary = "BEGIN PATCH 'name'";
  let arguments = (ins StrAttr:$name);
  let assemblyFormat = "$name attr-dict";
  let hasVerifier = 1;
}

def Larql_SavePatchOp : Larql_Op<"save_patch"> {
  let summary = "SAVE PATCH ['path']";
  let arguments = (ins OptionalAttr<StrAttr>:$path);
  let assemblyFormat = "($path^)? attr-dict";
}

def Larql_ApplyPatchOp : Larql_Op<"apply_patch"> {
  let summary = "APPLY PATCH 'path'";
  let arguments = (ins StrAttr:$path);
  let assemblyFormat = "$path attr-dict";
  let hasVerifier = 1;
}

#endif // VINDEX_LARQL_OPS
