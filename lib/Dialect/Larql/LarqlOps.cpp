//===- LarqlOps.cpp - larql op verifiers ----------------------------------===//
//
// What the grammar cannot check: names against the schema (the one check of
// column names, for scripts and IR written by hand alike), literal types
// against column types, positive counts, the FORMAT of a model, the columns
// an INSERT row needs.
//
//===----------------------------------------------------------------------===//
#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Larql/Schema.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/StringExtras.h"

#include <map>

using namespace mlir;
using namespace vindex::larql;
namespace schema = vindex::lql::schema;

#define GET_OP_CLASSES
#include "vindex/Dialect/Larql/LarqlOps.cpp.inc"

Location
vindex::larql::withClauses(Location Statement,
                           ArrayRef<std::pair<StringRef, Location>> Clauses) {
  SmallVector<Location> Locs{Statement};
  for (auto [Name, Loc] : Clauses)
    Locs.push_back(
        NameLoc::get(StringAttr::get(Statement.getContext(), Name), Loc));
  return FusedLoc::get(Statement.getContext(), Locs);
}

std::optional<Location> vindex::larql::clauseLoc(Operation *Op,
                                                 StringRef Attr) {
  auto Fused = dyn_cast<FusedLoc>(Op->getLoc());
  if (!Fused)
    return std::nullopt;
  for (Location L : Fused.getLocations())
    if (auto N = dyn_cast<NameLoc>(L); N && N.getName().getValue() == Attr)
      return N.getChildLoc();
  return std::nullopt;
}

static constexpr llvm::StringLiteral ColumnClausePrefix = "column:";

std::string vindex::larql::rowClause(size_t N) {
  return "row:" + std::to_string(N);
}

InFlightDiagnostic vindex::larql::rowError(Operation *Op, size_t N) {
  if (std::optional<Location> L = clauseLoc(Op, rowClause(N)))
    return mlir::emitError(*L) << "row " << N << ": ";
  return Op->emitOpError("row ") << N << ": ";
}

std::string vindex::larql::columnClause(StringRef Spelling) {
  return (ColumnClausePrefix + Spelling).str();
}

namespace {

/// Where the script wrote COLUMN (lower case) and how, if Op came from a
/// script: its first reference to that column.
std::optional<std::pair<StringRef, Location>> columnRef(Operation *Op,
                                                        StringRef Column) {
  auto Fused = dyn_cast<FusedLoc>(Op->getLoc());
  if (!Fused)
    return std::nullopt;
  for (Location L : Fused.getLocations()) {
    auto N = dyn_cast<NameLoc>(L);
    if (!N)
      continue;
    StringRef Spelling = N.getName().getValue();
    if (Spelling.consume_front(ColumnClausePrefix) &&
        Spelling.equals_insensitive(Column))
      return std::make_pair(Spelling, N.getChildLoc());
  }
  return std::nullopt;
}

/// An error about attribute Attr of Op: at its clause, worded as the
/// script's reader sees it, when the op came from a script; else an op
/// error (IR written by hand).
InFlightDiagnostic clauseError(Operation *Op, StringRef Attr) {
  if (std::optional<Location> L = vindex::larql::clauseLoc(Op, Attr))
    return mlir::emitError(*L);
  return Op->emitOpError();
}

/// COLUMN is one of TABLE's (a known table). The one check of column names:
/// a script's unknown column is reported at its token, as written, with a
/// suggestion; one in IR written by hand, on the op.
LogicalResult checkColumn(Operation *Op, StringRef Table, StringRef Column) {
  if (schema::hasColumn(Table, Column))
    return success();
  if (auto Ref = columnRef(Op, Column))
    return mlir::emitError(Ref->second)
           << schema::unknownColumnMessage(Table, Ref->first);
  return Op->emitOpError("unknown column '")
         << Column << "' in table '" << Table << "'";
}

/// VALUE may be compared with (or assigned to) COLUMN.
LogicalResult checkValue(Operation *Op, StringRef Column, Attribute Value) {
  bool Numeric = schema::isNumericColumn(Column);
  if (Numeric && !isa<IntegerAttr, FloatAttr>(Value))
    return Op->emitOpError("column '")
           << Column << "' is numeric and takes a number, not " << Value;
  if (!Numeric && !isa<StringAttr>(Value))
    return Op->emitOpError("column '")
           << Column << "' is text and takes a string, not " << Value;
  return success();
}

LogicalResult verifyWhere(Operation *Op, StringRef Table, Attribute A,
                          unsigned Depth = 1) {
  // IR written by hand is held to the parser's bound (schema::MaxWhereDepth)
  // before anything else walks it.
  if (Depth > schema::MaxWhereDepth)
    return Op->emitOpError("WHERE expression nests deeper than ")
           << schema::MaxWhereDepth << " levels";
  auto E = dyn_cast<ArrayAttr>(A);
  if (!E || E.size() != 3 || !isa<StringAttr>(E[0]))
    return Op->emitOpError("malformed WHERE expression ")
           << A << ": expected [op, lhs, rhs]";
  StringRef Kind = cast<StringAttr>(E[0]).getValue();
  if (Kind == "and" || Kind == "or")
    return failure(failed(verifyWhere(Op, Table, E[1], Depth + 1)) ||
                   failed(verifyWhere(Op, Table, E[2], Depth + 1)));
  if (!llvm::is_contained(schema::CompareOps, Kind))
    return Op->emitOpError("unknown WHERE operator '") << Kind << "'";
  auto Col = dyn_cast<StringAttr>(E[1]);
  if (!Col)
    return Op->emitOpError("WHERE compares a column name, not ") << E[1];
  if (failed(checkColumn(Op, Table, Col.getValue())))
    return failure();
  if (Kind == "in") {
    auto Vals = dyn_cast<ArrayAttr>(E[2]);
    if (!Vals || Vals.empty())
      return Op->emitOpError("IN needs a non-empty list of values");
    for (Attribute V : Vals)
      if (failed(checkValue(Op, Col.getValue(), V)))
        return failure();
    return success();
  }
  if (Kind == "like" && schema::isNumericColumn(Col.getValue()))
    return Op->emitOpError("LIKE needs a text column; '")
           << Col.getValue() << "' is numeric";
  return checkValue(Op, Col.getValue(), E[2]);
}

LogicalResult checkLayer(Operation *Op, std::optional<uint64_t> Layer) {
  if (Layer && static_cast<int64_t>(*Layer) < 0)
    return Op->emitOpError("layer must be non-negative, not ")
           << static_cast<int64_t>(*Layer);
  return success();
}

LogicalResult checkAssignments(Operation *Op, DictionaryAttr D) {
  for (NamedAttribute N : D)
    if (failed(checkColumn(Op, "edges", N.getName().getValue())) ||
        failed(checkValue(Op, N.getName().getValue(), N.getValue())))
      return failure();
  return success();
}

template <typename Range> std::string join(const Range &R) {
  std::string S;
  llvm::ListSeparator LS(", ");
  for (llvm::StringRef X : R)
    (S += LS) += X;
  return S;
}

} // namespace

LogicalResult SelectOp::verify() {
  StringRef Table = getTable();
  if (!schema::columns(Table))
    return emitOpError("unknown table '")
           << Table << "' (expected " << join(schema::Tables) << ")";
  if (auto Cols = getColumns(); Cols && Cols->empty())
    return emitOpError("'columns' must not be empty (leave it out for *)");
  if (auto Cols = getColumns())
    for (Attribute C : *Cols)
      if (failed(checkColumn(*this, Table, cast<StringAttr>(C).getValue())))
        return failure();
  if (getNearest() && Table == "entities")
    return emitOpError("NEAREST TO applies to edges and features, not "
                       "entities");
  if (getLayer() && !getNearest())
    return emitOpError(
        "'layer' is the layer of NEAREST TO and needs 'nearest'");
  if (failed(checkLayer(*this, getLayer())))
    return failure();
  if (auto W = getWhere(); W && failed(verifyWhere(*this, Table, *W)))
    return failure();
  if (auto Order = getOrderBy())
    for (Attribute K : *Order) {
      auto Key = dyn_cast<ArrayAttr>(K);
      if (!Key || Key.size() != 2 || !isa<StringAttr>(Key[0]) ||
          !isa<StringAttr>(Key[1]))
        return emitOpError(
                   "ORDER BY key must be [column, \"asc\"|\"desc\"], not ")
               << K;
      if (failed(
              checkColumn(*this, Table, cast<StringAttr>(Key[0]).getValue())))
        return failure();
      StringRef Dir = cast<StringAttr>(Key[1]).getValue();
      if (Dir != "asc" && Dir != "desc")
        return emitOpError(
                   "ORDER BY direction must be \"asc\" or \"desc\", not \"")
               << Dir << "\"";
    }
  if (auto Limit = getLimitAttr(); Limit && Limit.getInt() <= 0)
    return emitOpError("LIMIT must be positive, not ") << Limit.getInt();
  return success();
}

LogicalResult DescribeOp::verify() {
  if (auto Entity = getEntity(); Entity.trim().empty())
    return emitOpError("needs an entity, not an empty string");
  if (auto Band = getBand(); Band && !llvm::is_contained(schema::Bands, *Band))
    return emitOpError("unknown band '")
           << *Band << "' (expected " << join(schema::Bands) << ")";
  return checkLayer(*this, getLayer());
}

LogicalResult ShowOp::verify() {
  StringRef What = getWhat();
  if (!llvm::is_contained(schema::ShowKinds, What))
    return emitOpError("cannot show '")
           << What << "' (expected " << join(schema::ShowKinds) << ")";
  if (What == "features" && !getLayer())
    return emitOpError("SHOW FEATURES needs a 'layer'");
  if (What != "features" && getLayer())
    return emitOpError("only SHOW FEATURES takes a 'layer'");
  if ((getWhere() || getLimit()) && !schema::showColumns(What))
    return emitOpError("only SHOW RELATIONS, ENTITIES and FEATURES take "
                       "WHERE and LIMIT, not SHOW ")
           << What.upper();
  if (auto W = getWhere();
      W && failed(verifyWhere(*this, ("show " + What).str(), *W)))
    return failure();
  if (auto Limit = getLimitAttr(); Limit && Limit.getInt() <= 0)
    return emitOpError("LIMIT must be positive, not ") << Limit.getInt();
  return checkLayer(*this, getLayer());
}

/// A prompt's ids, when a pass resolved them (larql-resolve-tokens): at
/// least one, none negative (the range of the vocabulary is the model's,
/// checked when it runs).
static LogicalResult verifyTokens(Operation *Op,
                                  std::optional<ArrayRef<int32_t>> Tokens) {
  if (!Tokens)
    return success();
  if (Tokens->empty())
    return Op->emitOpError("tokens must not be empty");
  for (int32_t Id : *Tokens)
    if (Id < 0)
      return Op->emitOpError("token ids must be non-negative, not ") << Id;
  return success();
}

LogicalResult InferOp::verify() {
  if (failed(verifyTokens(*this, getTokens())))
    return failure();
  if (getTopAttr().getInt() <= 0)
    return emitOpError("TOP must be positive, not ") << getTopAttr().getInt();
  if (auto G = getGenerateAttr(); G && G.getInt() < 0)
    return emitOpError("GENERATE must be non-negative, not ") << G.getInt();
  return success();
}

LogicalResult WalkOp::verify() {
  if (failed(verifyTokens(*this, getTokens())))
    return failure();
  if (getTopAttr().getInt() <= 0)
    return emitOpError("TOP must be positive, not ") << getTopAttr().getInt();
  if (auto K = getKAttr(); K && K.getInt() <= 0)
    return clauseError(*this, "k") << "WITH K needs at least one feature";
  return success();
}

LogicalResult InsertOp::verify() {
  if (getRows().empty())
    return emitOpError("needs at least one row");
  unsigned N = 0;
  for (Attribute R : getRows()) {
    ++N;
    auto Row = dyn_cast<DictionaryAttr>(R);
    if (!Row)
      return emitOpError("row ") << N << " must be a dictionary, not " << R;
    if (failed(checkAssignments(*this, Row)))
      return failure();
    for (StringRef Need : {"entity", "relation", "target"})
      if (!Row.get(Need))
        return emitOpError("row ") << N << " needs '" << Need << "'";
  }
  // One fact per (entity, relation) and statement, with something to
  // write: checked here, where no model is needed.
  std::map<std::pair<std::string, std::string>, unsigned> Seen;
  N = 0;
  for (Attribute R : getRows()) {
    auto Row = cast<DictionaryAttr>(R);
    ++N;
    auto Text = [&](StringRef Col) {
      auto S = dyn_cast<StringAttr>(Row.get(Col));
      return S ? S.getValue().str() : std::string();
    };
    if (StringRef(Text("target")).trim().empty())
      return larql::rowError(*this, N) << "the target is empty";
    auto [It, New] = Seen.insert({{Text("entity"), Text("relation")}, N});
    if (!New)
      return larql::rowError(*this, N)
             << "'" << Text("entity") << "' " << Text("relation")
             << " is already given by row " << It->second
             << " (one fact per entity and relation in a statement)";
  }
  if (auto M = getMode(); M && !llvm::is_contained(larql::InsertModes, *M))
    return emitOpError("unknown MODE '")
           << *M << "' (expected " << join(larql::InsertModes) << ")";
  // MODE memit edits the layers its planner is given; a layer here would
  // be silently ignored.
  if (getMode() == "memit" && getLayer())
    return emitOpError("AT LAYER applies to MODE slot: MODE memit edits the "
                       "layers of larql-plan-edits{memit-layers=...}");
  return checkLayer(*this, getLayer());
}

LogicalResult DeleteOp::verify() {
  return verifyWhere(*this, "edges", getWhere());
}

LogicalResult UpdateOp::verify() {
  if (getSet().empty())
    return emitOpError("SET needs at least one column");
  if (failed(checkAssignments(*this, getSet())))
    return failure();
  return verifyWhere(*this, "edges", getWhere());
}

LogicalResult CreateRelationOp::verify() {
  if (getName().empty())
    return emitOpError("needs a relation name");
  if (!getPromptTemplate().contains("{entity}"))
    return clauseError(*this, "prompt_template")
           << "the template of a relation needs an {entity} placeholder";
  return success();
}

LogicalResult CompileOp::verify() {
  StringRef Target = getTarget();
  if (Target == "vindex") {
    if (getFormat() || getType())
      return emitOpError("COMPILE INTO VINDEX takes no FORMAT or TYPE");
  } else if (Target == "model") {
    if (!getFormat())
      return emitOpError("COMPILE INTO MODEL needs a FORMAT (")
             << join(schema::Formats) << ")";
    if (!llvm::is_contained(schema::Formats, *getFormat()))
      return emitOpError("unknown FORMAT '")
             << *getFormat() << "' (expected " << join(schema::Formats) << ")";
    if (getType() && *getFormat() != "gguf")
      return emitOpError("TYPE is for FORMAT gguf, not ") << *getFormat();
    if (getType() && !llvm::is_contained(schema::GGUFTypes, *getType()))
      return emitOpError("unknown GGUF TYPE '")
             << *getType() << "' (expected " << join(schema::GGUFTypes) << ")";
  } else {
    return emitOpError("unknown target '")
           << Target << "' (expected vindex, model)";
  }
  if (getPath().empty())
    return emitOpError("needs a path");
  return success();
}

LogicalResult BeginPatchOp::verify() {
  if (getName().empty())
    return emitOpError("needs a patch name");
  return success();
}

LogicalResult ApplyPatchOp::verify() {
  if (getPath().empty())
    return emitOpError("needs a path");
  return success();
}
