//===- ToIR.cpp - Lowering LQL statements to the larql dialect ------------===//
#include "vindex/LQL/ToIR.h"
#include "vindex/Dialect/Larql/LarqlOps.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

namespace vindex::lql {

namespace {

class Lowering {
public:
  Lowering(MLIRContext &Ctx, const llvm::SourceMgr &SM)
      : Ctx(Ctx), SM(SM), B(&Ctx) {}

  Attribute literal(const Literal &L) {
    if (const auto *I = std::get_if<int64_t>(&L))
      return B.getI64IntegerAttr(*I);
    if (const auto *D = std::get_if<double>(&L))
      return B.getF64FloatAttr(*D);
    return B.getStringAttr(std::get<std::string>(L));
  }

  ArrayAttr expr(const Expr &E) {
    if (E.K != Expr::Kind::Cmp)
      return B.getArrayAttr(
          {B.getStringAttr(E.K == Expr::Kind::And ? "and" : "or"), expr(*E.LHS),
           expr(*E.RHS)});
    Attribute Value;
    if (E.Op == "in") {
      SmallVector<Attribute> Vals;
      for (const Literal &L : E.Values)
        Vals.push_back(literal(L));
      Value = B.getArrayAttr(Vals);
    } else {
      Value = literal(E.Values.front());
    }
    return B.getArrayAttr(
        {B.getStringAttr(E.Op), B.getStringAttr(E.Column), Value});
  }

  DictionaryAttr assignments(const Assignments &A) {
    SmallVector<NamedAttribute> Named;
    for (const auto &[K, V] : A)
      Named.push_back(B.getNamedAttr(K, literal(V)));
    return B.getDictionaryAttr(Named);
  }

  /// STATEMENT with the location of each column it names (for the
  /// verifier's unknown-column error).
  Location columns(Location Statement, ArrayRef<ColumnRef> Refs) {
    if (Refs.empty())
      return Statement;
    std::vector<std::string> Names;
    for (const ColumnRef &R : Refs)
      Names.push_back(larql::columnClause(R.Spelling));
    SmallVector<std::pair<StringRef, Location>> Clauses;
    for (auto [Name, R] : llvm::zip_equal(Names, Refs))
      Clauses.push_back({Name, toLocation(Ctx, SM, R.Range)});
    return larql::withClauses(Statement, Clauses);
  }

  IntegerAttr i64(std::optional<int64_t> V) {
    return V ? B.getI64IntegerAttr(*V) : IntegerAttr();
  }
  StringAttr str(const std::optional<std::string> &V) {
    return V ? B.getStringAttr(*V) : StringAttr();
  }

  void lower(Location L, const SelectStmt &S) {
    ArrayAttr Cols;
    if (!S.Columns.empty())
      Cols = B.getStrArrayAttr(
          SmallVector<StringRef>(S.Columns.begin(), S.Columns.end()));
    ArrayAttr Order;
    if (!S.OrderBy.empty()) {
      SmallVector<Attribute> Keys;
      for (const OrderKey &K : S.OrderBy)
        Keys.push_back(
            B.getStrArrayAttr({K.Column, K.Descending ? "desc" : "asc"}));
      Order = B.getArrayAttr(Keys);
    }
    B.create<larql::SelectOp>(L, B.getStringAttr(tableName(S.From)), Cols,
                              str(S.Nearest), i64(S.Layer),
                              S.Where ? expr(*S.Where) : ArrayAttr(), Order,
                              i64(S.Limit));
  }
  void lower(Location L, const DescribeStmt &S) {
    B.create<larql::DescribeOp>(L, B.getStringAttr(S.Entity), i64(S.Layer),
                                str(S.Band), S.UsingEmbedding);
  }
  void lower(Location L, const ShowStmt &S) {
    B.create<larql::ShowOp>(L, B.getStringAttr(S.What), i64(S.Layer),
                            S.Where ? expr(*S.Where) : ArrayAttr(),
                            i64(S.Limit));
  }
  void lower(Location L, const InferStmt &S) {
    B.create<larql::InferOp>(
        L, B.getStringAttr(S.Prompt), B.getI64IntegerAttr(S.Top),
        S.Generate ? B.getI64IntegerAttr(*S.Generate) : IntegerAttr(),
        /*tokens=*/DenseI32ArrayAttr());
  }
  void lower(Location L, const WalkStmt &S) {
    if (S.K)
      L = larql::withClauses(L, {{"k", toLocation(Ctx, SM, S.KLoc)}});
    B.create<larql::WalkOp>(L, B.getStringAttr(S.Prompt),
                            B.getI64IntegerAttr(S.Top),
                            S.K ? B.getI64IntegerAttr(*S.K) : IntegerAttr(),
                            /*tokens=*/DenseI32ArrayAttr());
  }
  void lower(Location L, const TraceStmt &S) {
    B.create<larql::TraceOp>(L, B.getStringAttr(S.Prompt));
  }
  void lower(Location L, const InsertStmt &S) {
    SmallVector<Attribute> Rows;
    for (const Assignments &R : S.Rows)
      Rows.push_back(assignments(R));
    // Each row's location, so that errors about one fact point at it.
    std::vector<std::string> Names;
    for (size_t R = 0; R < S.RowLocs.size(); ++R)
      Names.push_back(larql::rowClause(R + 1));
    SmallVector<std::pair<StringRef, Location>> Clauses;
    for (auto [Name, R] : llvm::zip_equal(Names, S.RowLocs))
      Clauses.push_back({Name, toLocation(Ctx, SM, R)});
    if (!Clauses.empty())
      L = larql::withClauses(L, Clauses);
    B.create<larql::InsertOp>(L, B.getArrayAttr(Rows), i64(S.Layer),
                              str(S.Mode));
  }
  void lower(Location L, const DeleteStmt &S) {
    B.create<larql::DeleteOp>(L, expr(*S.Where));
  }
  void lower(Location L, const UpdateStmt &S) {
    B.create<larql::UpdateOp>(L, assignments(S.Set), expr(*S.Where));
  }
  void lower(Location L, const CreateRelationStmt &S) {
    L = larql::withClauses(
        L, {{"prompt_template", toLocation(Ctx, SM, S.TemplateLoc)}});
    B.create<larql::CreateRelationOp>(L, B.getStringAttr(S.Name),
                                      B.getStringAttr(S.Template));
  }
  void lower(Location L, const CompileStmt &S) {
    B.create<larql::CompileOp>(L, B.getStringAttr(S.Target),
                               B.getStringAttr(S.Path), str(S.Format),
                               str(S.Type));
  }
  void lower(Location L, const BeginPatchStmt &S) {
    B.create<larql::BeginPatchOp>(L, B.getStringAttr(S.Name));
  }
  void lower(Location L, const SavePatchStmt &S) {
    B.create<larql::SavePatchOp>(L, str(S.Path));
  }
  void lower(Location L, const ApplyPatchStmt &S) {
    B.create<larql::ApplyPatchOp>(L, B.getStringAttr(S.Path));
  }

  MLIRContext &Ctx;
  const llvm::SourceMgr &SM;
  OpBuilder B;
};

} // namespace

OwningOpRef<ModuleOp> lowerToIR(MLIRContext &Ctx, const llvm::SourceMgr &SM,
                                ArrayRef<Statement> Stmts) {
  Ctx.getOrLoadDialect<larql::LarqlDialect>();
  Location ModLoc = Stmts.empty() ? Location(UnknownLoc::get(&Ctx))
                                  : toLocation(Ctx, SM, Stmts.front().Loc);
  OwningOpRef<ModuleOp> M = ModuleOp::create(ModLoc);
  Lowering Low(Ctx, SM);
  Low.B.setInsertionPointToEnd(M->getBody());
  for (const Statement &S : Stmts) {
    Location L = Low.columns(toLocation(Ctx, SM, S.Loc), S.Columns);
    std::visit([&](const auto &N) { Low.lower(L, N); }, S.Node);
  }
  return M;
}

} // namespace vindex::lql
