//===- LarqlDialect.td - The larql dialect -----------------*- tablegen -*-===//
#ifndef VINDEX_LARQL_DIALECT
#define VINDEX_LARQL_DIALECT

include "mlir/IR/OpBase.td"

def Larql_Dialect : Dialect {
  let name = "larql";
  let summary = "LQL statements, one op per statement kind";
  let description = [{
    An LQL script lowers to a `builtin.module` holding one `larql` op per
    statement, in script order, each located at the statement's first token
    (`FileLineColLoc`). Every clause is an attribute. A WHERE expression is a
    nested array: `["and", e1, e2]`, `["or", e1, e2]`, `[op, column, value]`
    with op one of `= != < <= > >= like`, or `["in", column, [values]]`.
  }];
  let cppNamespace = "::vindex::larql";
}

class Larql_Op<string mnemonic, list<Trait> traits = []>
    : Op<Larql_Dialect, mnemonic, traits>;

#endif // VINDEX_LARQL_DIALECT
