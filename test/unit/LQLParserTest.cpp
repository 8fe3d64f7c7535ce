//===- LQLParserTest.cpp - The LQL parser's AST ---------------------------===//
#include "vindex/LQL/Diagnostics.h"
#include "vindex/LQL/Parser.h"
#include "vindex/LQL/ToIR.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace vindex::lql;

namespace {

struct Parsed {
  std::optional<std::vector<Statement>> Stmts;
  std::vector<Statement> Clean;
  std::string Diags;
};

/// Parses TEXT; with VERIFY, also lowers its clean statements to the `larql`
/// dialect and verifies each op, as larql-opt does (the verifier is where
/// names are checked against the schema).
Parsed parse(llvm::StringRef Text, bool Verify = false) {
  Parsed P;
  mlir::MLIRContext Ctx;
  llvm::SourceMgr SM;
  llvm::raw_string_ostream OS(P.Diags);
  ScriptDiagnosticPrinter Printer(Ctx, SM, "", OS);
  unsigned Buf = SM.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(Text, "t.lql"), llvm::SMLoc());
  P.Stmts = parseScript(SM, Buf, Ctx, &P.Clean);
  if (Verify) {
    mlir::OwningOpRef<mlir::ModuleOp> M = lowerToIR(Ctx, SM, P.Clean);
    for (mlir::Operation &Op : M->getBody()->getOperations())
      (void)mlir::verify(&Op);
  }
  return P;
}

TEST(LQLParser, SelectClauses) {
  Parsed P = parse("select Entity, target from EDGES nearest to 'France' at "
                   "layer 3 where layer >= 2 and (score > -0.5 or relation in "
                   "('a', \"b\")) order by score desc, layer limit 7");
  ASSERT_TRUE(P.Stmts) << P.Diags;
  ASSERT_EQ(P.Stmts->size(), 1u);
  const auto &S = std::get<SelectStmt>(P.Stmts->front().Node);
  EXPECT_EQ(S.From, Table::Edges);
  EXPECT_EQ(S.Columns, (std::vector<std::string>{"entity", "target"}));
  EXPECT_EQ(S.Nearest, "France");
  EXPECT_EQ(S.Layer, 3);
  EXPECT_EQ(S.Limit, 7);
  ASSERT_EQ(S.OrderBy.size(), 2u);
  EXPECT_TRUE(S.OrderBy[0].Descending);
  EXPECT_FALSE(S.OrderBy[1].Descending);
  ASSERT_TRUE(S.Where);
  EXPECT_EQ(S.Where->K, Expr::Kind::And);
  EXPECT_EQ(S.Where->LHS->Column, "layer");
  EXPECT_EQ(S.Where->LHS->Op, ">=");
  EXPECT_EQ(std::get<int64_t>(S.Where->LHS->Values[0]), 2);
  const Expr &Or = *S.Where->RHS;
  EXPECT_EQ(Or.K, Expr::Kind::Or);
  EXPECT_DOUBLE_EQ(std::get<double>(Or.LHS->Values[0]), -0.5);
  EXPECT_EQ(Or.RHS->Op, "in");
  EXPECT_EQ(Or.RHS->Values.size(), 2u);
  EXPECT_EQ(std::get<std::string>(Or.RHS->Values[1]), "b");
}

TEST(LQLParser, EveryStatementKind) {
  Parsed P = parse(R"(
    SELECT * FROM features; DESCRIBE 'x' KNOWLEDGE; SHOW FEATURES 2;
    INFER 'p'; WALK 'p' WITH K 3; TRACE 'p';
    INSERT INTO edges VALUES (entity='a', relation='r', target='t'), (entity='b', relation='r', target='u') AT LAYER 1 MODE knn;
    DELETE FROM edges WHERE entity = 'a';
    UPDATE edges SET target = 'v' WHERE entity = 'b';
    CREATE RELATION r AS 'of {entity}';
    COMPILE CURRENT INTO MODEL 'm' FORMAT GGUF;
    BEGIN PATCH 'p'; SAVE PATCH; APPLY PATCH 'p.lqlp')");
  ASSERT_TRUE(P.Stmts) << P.Diags;
  ASSERT_EQ(P.Stmts->size(), 14u);
  for (size_t I = 0; I < 14; ++I)
    EXPECT_EQ((*P.Stmts)[I].Node.index(), I);
  const auto &Ins = std::get<InsertStmt>((*P.Stmts)[6].Node);
  EXPECT_EQ(Ins.Rows.size(), 2u);
  EXPECT_EQ(Ins.Mode, "knn");
  EXPECT_EQ(std::get<ShowStmt>((*P.Stmts)[2].Node).Layer, 2);
  EXPECT_EQ(std::get<CompileStmt>((*P.Stmts)[10].Node).Format, "gguf");
  EXPECT_FALSE(std::get<SavePatchStmt>((*P.Stmts)[12].Node).Path);
}

// An unknown column is not the parser's error (the verifier checks names):
// its statement stays clean, and the verifier reports it at its token, after
// the parse errors.
TEST(LQLParser, ReportsEveryErrorAndKeepsCleanStatements) {
  Parsed P = parse("SELECT laer FROM features;\nSHOW MODEL;\nSELCT 1;\n"
                   "TRACE 'x'",
                   /*Verify=*/true);
  EXPECT_FALSE(P.Stmts);
  size_t Parse = P.Diags.find("t.lql:3:1: error: expected a statement");
  EXPECT_NE(Parse, std::string::npos) << P.Diags;
  EXPECT_NE(P.Diags.find("did you mean 'SELECT'?"), std::string::npos);
  size_t Column = P.Diags.find("t.lql:1:8: error: unknown column 'laer'; did "
                               "you mean 'layer'?");
  ASSERT_NE(Column, std::string::npos) << P.Diags;
  EXPECT_GT(Column, Parse) << P.Diags;
  ASSERT_EQ(P.Clean.size(), 3u);
  EXPECT_EQ(P.Clean[0].keyword(), "SELECT");
  EXPECT_EQ(P.Clean[1].keyword(), "SHOW");
  EXPECT_EQ(P.Clean[2].keyword(), "TRACE");
}

// The parser records each column as written, at its token, for the verifier.
TEST(LQLParser, RecordsColumnReferences) {
  Parsed P = parse("SELECT Layer FROM features WHERE laer = 1 ORDER BY x");
  ASSERT_TRUE(P.Stmts) << P.Diags;
  const std::vector<ColumnRef> &Refs = P.Stmts->front().Columns;
  ASSERT_EQ(Refs.size(), 3u);
  EXPECT_EQ(Refs[0].Spelling, "Layer");
  EXPECT_EQ(Refs[1].Spelling, "laer");
  EXPECT_EQ(Refs[2].Spelling, "x");
  EXPECT_EQ(Refs[1].Range.End.getPointer() - Refs[1].Range.Start.getPointer(),
            4);
}

} // namespace
