//===- Parser.cpp - LQL lexer and parser ----------------------------------===//
//
// Keywords are case-insensitive; strings take single or double quotes with
// backslash escapes, and a doubled quote inside them stands for one (SQL);
// numbers are integers or decimals, optionally negative;
// `--` and `/* */` are comments; statements are separated by `;`. After an
// error the parser skips to the next `;` and goes on, so that one run
// reports every error of a script. Unknown keywords, tables and columns
// close to a known one get a "did you mean" suggestion.
//
//===----------------------------------------------------------------------===//
#include "vindex/LQL/Parser.h"
#include "vindex/LQL/Diagnostics.h"
#include "vindex/Dialect/Larql/Schema.h"

#include "mlir/IR/Diagnostics.h"

#include "llvm/ADT/StringExtras.h"

using namespace llvm;

namespace vindex::lql {

StringRef tableName(Table T) {
  return schema::Tables[static_cast<unsigned>(T)];
}

StringRef Statement::keyword() const {
  static const char *const Names[] = {
      "SELECT",  "DESCRIBE",    "SHOW",       "INFER",      "WALK",
      "TRACE",   "INSERT",      "DELETE",     "UPDATE",     "CREATE RELATION",
      "COMPILE", "BEGIN PATCH", "SAVE PATCH", "APPLY PATCH"};
  return Names[Node.index()];
}

namespace {

enum class Tok { Eof, Ident, String, Number, Punct, Semi, Error };

struct Token {
  Tok Kind = Tok::Eof;
  StringRef Text;    ///< The source text of the token.
  std::string Value; ///< Unescaped string contents.
  SMLoc loc() const { return SMLoc::getFromPointer(Text.data()); }
};

class Lexer {
public:
  Lexer(SourceMgr &SM, unsigned Buf, mlir::MLIRContext &Ctx)
      : SM(SM), Ctx(Ctx), Text(SM.getMemoryBuffer(Buf)->getBuffer()), Cur(Text.begin()) {}

  Token next() {
    skipSpaceAndComments();
    Token T;
    const char *Start = Cur;
    if (Cur == Text.end()) {
      T.Text = StringRef(Cur, 0);
      return T;
    }
    char C = *Cur;
    auto Peek = [&](size_t N) -> char {
      return Cur + N < Text.end() ? Cur[N] : '\0';
    };
    if (C == ';') {
      ++Cur;
      T.Kind = Tok::Semi;
    } else if (C == '\'' || C == '"') {
      return lexString();
    } else if (isDigit(C) || (C == '.' && isDigit(Peek(1))) ||
               (C == '-' &&
                (isDigit(Peek(1)) || (Peek(1) == '.' && isDigit(Peek(2)))))) {
      if (C == '-')
        ++Cur;
      while (Cur != Text.end() && isDigit(*Cur))
        ++Cur;
      if (Cur != Text.end() && *Cur == '.') {
        ++Cur;
        while (Cur != Text.end() && isDigit(*Cur))
          ++Cur;
      }
      T.Kind = Tok::Number;
    } else if (isAlpha(C) || C == '_') {
      while (Cur != Text.end() && (isAlnum(*Cur) || *Cur == '_'))
        ++Cur;
      T.Kind = Tok::Ident;
    } else if ((C == '!' && Peek(1) == '=') || (C == '<' && Peek(1) == '=') ||
               (C == '>' && Peek(1) == '=') || (C == '<' && Peek(1) == '>')) {
      Cur += 2;
      T.Kind = Tok::Punct;
    } else if (StringRef("(),=<>*").contains(C)) {
      ++Cur;
      T.Kind = Tok::Punct;
    } else {
      ++Cur;
      T.Kind = Tok::Error;
      T.Text = StringRef(Start, 1);
      error(T.loc(), "unexpected character '" + T.Text + "'");
      return T;
    }
    T.Text = StringRef(Start, Cur - Start);
    return T;
  }

  /// Reports MSG at the token RANGE (or the position Range.Start) as an
  /// MLIR diagnostic.
  void error(SMRange Range, const Twine &Msg) {
    mlir::emitError(toLocation(Ctx, SM, Range), Msg);
    ++Errors;
  }
  void error(SMLoc Loc, const Twine &Msg) { error(SMRange(Loc, Loc), Msg); }
  unsigned errors() const { return Errors; }

private:
  void skipSpaceAndComments() {
    while (Cur != Text.end()) {
      if (isSpace(*Cur)) {
        ++Cur;
      } else if (StringRef(Cur, Text.end() - Cur).starts_with("--")) {
        while (Cur != Text.end() && *Cur != '\n')
          ++Cur;
      } else if (StringRef(Cur, Text.end() - Cur).starts_with("/*")) {
        const char *Open = Cur;
        size_t End = StringRef(Cur + 2, Text.end() - Cur - 2).find("*/");
        if (End == StringRef::npos) {
          error(SMLoc::getFromPointer(Open), "unterminated comment");
          Cur = Text.end();
        } else {
          Cur += End + 4;
        }
      } else {
        return;
      }
    }
  }

  Token lexString() {
    Token T;
    const char *Start = Cur;
    char Quote = *Cur++;
    while (Cur != Text.end()) {
      if (*Cur == Quote) {
        // SQL's habit: a doubled quote inside the string is one quote.
        if (Cur + 1 == Text.end() || Cur[1] != Quote)
          break;
        T.Value += Quote;
        Cur += 2;
        continue;
      }
      char C = *Cur++;
      if (C != '\\' || Cur == Text.end()) {
        T.Value += C;
        continue;
      }
      char E = *Cur++;
      switch (E) {
      case 'n':
        T.Value += '\n';
        break;
      case 't':
        T.Value += '\t';
        break;
      default: // \\, \', \" and anything else stand for themselves
        T.Value += E;
      }
    }
    if (Cur == Text.end()) {
      T.Kind = Tok::Error;
      T.Text = StringRef(Start, Cur - Start);
      error(T.loc(), "unterminated string");
      return T;
    }
    ++Cur;
    T.Kind = Tok::String;
    T.Text = StringRef(Start, Cur - Start);
    return T;
  }

  SourceMgr &SM;
  mlir::MLIRContext &Ctx;
  StringRef Text;
  const char *Cur;
  unsigned Errors = 0;
};

/// Every keyword of the language, for suggestions.
const char *const Keywords[] = {
    "SELECT",    "DESCRIBE", "SHOW",      "INFER",    "WALK",     "TRACE",
    "INSERT",    "DELETE",   "UPDATE",    "CREATE",   "COMPILE",  "BEGIN",
    "SAVE",      "APPLY",    "FROM",      "NEAREST",  "TO",       "AT",
    "LAYER",     "WHERE",    "ORDER",     "BY",       "ASC",      "DESC",
    "LIMIT",     "AND",      "OR",        "IN",       "LIKE",     "SYNTAX",
    "KNOWLEDGE", "OUTPUT",   "RELATIONS", "LAYERS",   "ENTITIES", "FEATURES",
    "PATCHES",   "MODEL",    "TOP",       "GENERATE", "WITH",     "K",
    "INTO",      "VALUES",   "MODE",      "SET",      "RELATION", "AS",
    "CURRENT",   "VINDEX",   "FORMAT",    "PATCH",    "USING",    "EMBEDDING"};

const char *const StatementKeywords[] = {
    "SELECT", "DESCRIBE", "SHOW",   "INFER",   "WALK",  "TRACE", "INSERT",
    "DELETE", "UPDATE",   "CREATE", "COMPILE", "BEGIN", "SAVE",  "APPLY"};

using schema::closest;

class Parser {
public:
  Parser(SourceMgr &SM, unsigned Buf, mlir::MLIRContext &Ctx)
      : Lex(SM, Buf, Ctx) {
    advance();
  }

  std::optional<std::vector<Statement>> parse(std::vector<Statement> *Clean) {
    std::vector<Statement> Out;
    while (Cur.Kind != Tok::Eof) {
      if (Cur.Kind == Tok::Semi) {
        advance();
        continue;
      }
      Statement S;
      S.Loc = Cur.loc();
      unsigned ErrorsBefore = Lex.errors();
      Columns.clear();
      if (statement(S)) {
        S.Columns = std::move(Columns);
        if (Cur.Kind != Tok::Semi && Cur.Kind != Tok::Eof) {
          unexpected("';' or the end of the script", Keywords);
          recover();
        }
        if (Clean && Lex.errors() == ErrorsBefore)
          Clean->push_back(S);
        Out.push_back(std::move(S));
      } else {
        recover();
      }
    }
    if (Lex.errors())
      return std::nullopt;
    return Out;
  }

private:
  void advance() { Cur = Lex.next(); }
  void recover() {
    while (Cur.Kind != Tok::Semi && Cur.Kind != Tok::Eof)
      advance();
  }
  SMRange range(const Token &T) {
    return SMRange(T.loc(), SMLoc::getFromPointer(T.Text.end()));
  }
  void error(const Token &T, const Twine &Msg) {
    Lex.error(range(T), Msg);
  }
  /// "expected WANT, found 'TOK'", with "; did you mean 'K'?" when the token
  /// is a word close to one of SUGGEST (keywords, upper case).
  void unexpected(const Twine &Want, ArrayRef<const char *> Suggest = {}) {
    if (Cur.Kind == Tok::Error)
      return; // already reported by the lexer
    std::string Got =
        Cur.Kind == Tok::Eof ? "end of script" : "'" + Cur.Text.str() + "'";
    std::string Hint;
    if (Cur.Kind == Tok::Ident) {
      SmallVector<StringRef> Cands(Suggest.begin(), Suggest.end());
      if (auto Best = closest(Cur.Text, Cands, /*Upper=*/true))
        Hint = "; did you mean '" + *Best + "'?";
    }
    error(Cur, "expected " + Want + ", found " + Got + Hint);
  }
  bool isKeyword(StringRef K) const {
    return Cur.Kind == Tok::Ident && Cur.Text.equals_insensitive(K);
  }
  bool isPunct(StringRef P) const {
    return Cur.Kind == Tok::Punct && Cur.Text == P;
  }
  bool consumeKeyword(StringRef K) {
    if (!isKeyword(K))
      return false;
    advance();
    return true;
  }
  bool consumePunct(StringRef P) {
    if (!isPunct(P))
      return false;
    advance();
    return true;
  }
  bool expectKeyword(const char *K, StringRef After) {
    if (consumeKeyword(K))
      return true;
    unexpected(Twine(K) + " after " + After, {K});
    return false;
  }
  bool expectPunct(StringRef P, StringRef Where) {
    if (consumePunct(P))
      return true;
    unexpected("'" + P + "' " + Where);
    return false;
  }
  std::optional<std::string> string(const Twine &What) {
    if (Cur.Kind != Tok::String) {
      unexpected(What);
      return std::nullopt;
    }
    std::string V = Cur.Value;
    advance();
    return V;
  }
  std::optional<unsigned> integer(const Twine &What) {
    unsigned V;
    if (Cur.Kind != Tok::Number || Cur.Text.getAsInteger(10, V)) {
      unexpected(What);
      return std::nullopt;
    }
    advance();
    return V;
  }
  std::optional<int64_t> signedInteger(const Twine &What) {
    int64_t V;
    if (Cur.Kind != Tok::Number || Cur.Text.getAsInteger(10, V)) {
      unexpected(What);
      return std::nullopt;
    }
    advance();
    return V;
  }
  std::optional<Literal> literal(const Twine &What) {
    if (Cur.Kind == Tok::String) {
      std::string V = Cur.Value;
      advance();
      return Literal(V);
    }
    if (Cur.Kind == Tok::Number) {
      Literal L;
      int64_t I;
      if (!Cur.Text.getAsInteger(10, I)) {
        L = I;
      } else {
        double D;
        if (Cur.Text.getAsDouble(D)) {
          error(Cur, "number out of range: '" + Cur.Text + "'");
          return std::nullopt;
        }
        L = D;
      }
      advance();
      return L;
    }
    unexpected(What);
    return std::nullopt;
  }
  /// An identifier (a name), lower-cased.
  std::optional<std::string> name(const Twine &What) {
    if (Cur.Kind != Tok::Ident) {
      unexpected(What);
      return std::nullopt;
    }
    std::string V = Cur.Text.lower();
    advance();
    return V;
  }
  /// A column name, lower-cased. Whether TABLE has it is the verifier's
  /// check (the one place for it); the parser records where the script wrote
  /// it so that the error points there.
  std::optional<std::string> column(const Twine &What) {
    Token At = Cur;
    std::optional<std::string> C = name(What);
    if (C)
      recordColumn(At);
    return C;
  }
  void recordColumn(const Token &At) {
    Columns.push_back({At.Text.str(), range(At)});
  }
  /// One of CHOICES (lower case), written as a keyword.
  std::optional<std::string> choice(ArrayRef<StringLiteral> Choices,
                                    const Twine &What) {
    if (Cur.Kind == Tok::Ident)
      for (StringRef C : Choices)
        if (Cur.Text.equals_insensitive(C)) {
          advance();
          return C.str();
        }
    std::vector<std::string> Upper;
    for (StringRef C : Choices)
      Upper.push_back(C.upper());
    std::vector<const char *> Ptrs;
    for (const std::string &U : Upper)
      Ptrs.push_back(U.c_str());
    unexpected(What, Ptrs);
    return std::nullopt;
  }
  std::optional<Table> table(const Twine &What) {
    std::optional<std::string> T = choice(schema::Tables, What);
    if (!T)
      return std::nullopt;
    return *T == "edges"      ? Table::Edges
           : *T == "features" ? Table::Features
                              : Table::Entities;
  }
  /// [AT LAYER n]
  bool optLayer(std::optional<int64_t> &Layer) {
    if (!consumeKeyword("AT"))
      return true;
    if (!expectKeyword("LAYER", "AT"))
      return false;
    std::optional<unsigned> N = integer("a layer number after AT LAYER");
    if (!N)
      return false;
    Layer = *N;
    return true;
  }

  // Expressions: or := and (OR and)*; and := primary (AND primary)*;
  // primary := '(' or ')' | column op literal | column IN (lits) |
  // column LIKE 'pattern'. Each returns the height of its tree in H (a
  // comparison is 1), so that no expression deeper than
  // schema::MaxWhereDepth is built (see there).
  std::unique_ptr<Expr> binary(Expr::Kind K, StringRef Keyword, unsigned &H) {
    std::unique_ptr<Expr> L = K == Expr::Kind::Or ? binary(Expr::Kind::And,
                                                           "AND", H)
                                                  : primary(H);
    while (L && isKeyword(Keyword)) {
      Token Op = Cur;
      advance();
      unsigned RH = 0;
      std::unique_ptr<Expr> R =
          K == Expr::Kind::Or ? binary(Expr::Kind::And, "AND", RH)
                              : primary(RH);
      if (!R)
        return nullptr;
      H = std::max(H, RH) + 1;
      if (H > schema::MaxWhereDepth) {
        tooDeep(Op);
        return nullptr;
      }
      auto E = std::make_unique<Expr>();
      E->K = K;
      E->Loc = Op.loc();
      E->LHS = std::move(L);
      E->RHS = std::move(R);
      L = std::move(E);
    }
    return L;
  }
  std::unique_ptr<Expr> orExpr(unsigned &H) {
    return binary(Expr::Kind::Or, "OR", H);
  }
  void tooDeep(const Token &At) {
    error(At, "WHERE expression nests deeper than " +
                  Twine(schema::MaxWhereDepth) +
                  " levels (AND, OR and parentheses)");
  }
  std::unique_ptr<Expr> primary(unsigned &H) {
    H = 1;
    if (isPunct("(")) {
      // Parentheses recurse without adding to the tree's height.
      if (++ParenDepth > schema::MaxWhereDepth) {
        tooDeep(Cur);
        return nullptr;
      }
      advance();
      std::unique_ptr<Expr> E = orExpr(H);
      --ParenDepth;
      if (!E || !expectPunct(")", "to close the parenthesis"))
        return nullptr;
      return E;
    }
    auto E = std::make_unique<Expr>();
    E->Loc = Cur.loc();
    std::optional<std::string> C = column("a column name");
    if (!C)
      return nullptr;
    E->Column = *C;
    if (Cur.Kind == Tok::Punct && Cur.Text != "(" && Cur.Text != ")" &&
        Cur.Text != "," && Cur.Text != "*") {
      E->Op = Cur.Text == "<>" ? "!=" : Cur.Text.str();
      advance();
      std::optional<Literal> L =
          literal(Twine("a number or string after '") + E->Op + "'");
      if (!L)
        return nullptr;
      E->Values.push_back(std::move(*L));
      return E;
    }
    if (consumeKeyword("LIKE")) {
      E->Op = "like";
      std::optional<std::string> P = string("a pattern string after LIKE");
      if (!P)
        return nullptr;
      E->Values.push_back(*P);
      return E;
    }
    if (consumeKeyword("IN")) {
      E->Op = "in";
      if (!expectPunct("(", "after IN"))
        return nullptr;
      do {
        std::optional<Literal> L = literal("a number or string in the IN list");
        if (!L)
          return nullptr;
        E->Values.push_back(std::move(*L));
      } while (consumePunct(","));
      if (!expectPunct(")", "to close the IN list"))
        return nullptr;
      return E;
    }
    unexpected("a comparison (= != < <= > >= IN LIKE) after '" + E->Column +
                   "'",
               {"IN", "LIKE"});
    return nullptr;
  }
  bool where(ExprPtr &Out) {
    unsigned H = 0;
    ParenDepth = 0;
    std::unique_ptr<Expr> E = orExpr(H);
    if (!E)
      return false;
    Out = std::move(E);
    return true;
  }
  /// k = literal [, ...] with columns of edges.
  bool assignments(Assignments &Out) {
    do {
      Token At = Cur;
      std::optional<std::string> K = column("a column name");
      if (!K)
        return false;
      for (auto &[Prev, V] : Out)
        if (Prev == *K) {
          error(At, "column '" + *K + "' is given twice");
          break;
        }
      if (!expectPunct("=", "after the column name"))
        return false;
      std::optional<Literal> V =
          literal("a number or string after '" + *K + " ='");
      if (!V)
        return false;
      Out.emplace_back(*K, std::move(*V));
    } while (consumePunct(","));
    return true;
  }

  bool statement(Statement &S) {
    if (consumeKeyword("SELECT"))
      return select(S);
    if (consumeKeyword("DESCRIBE")) {
      DescribeStmt D;
      std::optional<std::string> E = string("an entity string after DESCRIBE");
      if (!E)
        return false;
      D.Entity = *E;
      // AT LAYER, a band selector and USING EMBEDDING, each at most once,
      // in any order.
      bool Progress = true;
      while (Progress) {
        Progress = false;
        if (!D.Layer && isKeyword("AT")) {
          if (!optLayer(D.Layer))
            return false;
          Progress = true;
        }
        if (!D.UsingEmbedding && consumeKeyword("USING")) {
          if (!expectKeyword("EMBEDDING", "USING"))
            return false;
          D.UsingEmbedding = true;
          Progress = true;
        }
        if (!D.Band)
          for (StringRef B : schema::Bands)
            if (consumeKeyword(B)) {
              D.Band = B.str();
              Progress = true;
              break;
            }
      }
      S.Node = std::move(D);
      return true;
    }
    if (consumeKeyword("SHOW")) {
      ShowStmt Sh;
      std::optional<std::string> W = choice(
          schema::ShowKinds,
          "RELATIONS, LAYERS, ENTITIES, FEATURES, PATCHES or MODEL after SHOW");
      if (!W)
        return false;
      Sh.What = *W;
      if (Sh.What == "features") {
        std::optional<unsigned> N = integer("a layer number after FEATURES");
        if (!N)
          return false;
        Sh.Layer = *N;
      }
      // Every kind parses WHERE and LIMIT; the verifier says which take
      // them (and checks the columns), at the statement.
      if (consumeKeyword("WHERE") && !where(Sh.Where))
        return false;
      if (consumeKeyword("LIMIT")) {
        std::optional<int64_t> N = signedInteger("a row count after LIMIT");
        if (!N)
          return false;
        Sh.Limit = *N;
      }
      S.Node = std::move(Sh);
      return true;
    }
    if (consumeKeyword("INFER")) {
      InferStmt I;
      std::optional<std::string> P = string("a prompt string after INFER");
      if (!P)
        return false;
      I.Prompt = *P;
      // TOP and GENERATE, each at most once, in any order.
      bool Top = false, Generate = false;
      while (true) {
        if (!Top && consumeKeyword("TOP")) {
          Top = true;
          std::optional<unsigned> N = integer("a count after TOP");
          if (!N)
            return false;
          I.Top = *N;
        } else if (!Generate && consumeKeyword("GENERATE")) {
          Generate = true;
          std::optional<unsigned> N = integer("a token count after GENERATE");
          if (!N)
            return false;
          I.Generate = *N;
        } else {
          break;
        }
      }
      S.Node = std::move(I);
      return true;
    }
    if (consumeKeyword("WALK")) {
      WalkStmt W;
      std::optional<std::string> P = string("a prompt string after WALK");
      if (!P)
        return false;
      W.Prompt = *P;
      // TOP and WITH K, each at most once, in any order.
      bool Top = false, WithK = false;
      while (true) {
        if (!Top && consumeKeyword("TOP")) {
          Top = true;
          std::optional<unsigned> N = integer("a count after TOP");
          if (!N)
            return false;
          W.Top = *N;
        } else if (!WithK && consumeKeyword("WITH")) {
          WithK = true;
          if (!consumeKeyword("K")) {
            unexpected("K after WITH");
            return false;
          }
          // A count of 0 parses; the verifier refuses it, at this token.
          SMLoc At = Cur.loc();
          std::optional<unsigned> N = integer("a feature count after WITH K");
          if (!N)
            return false;
          W.K = *N;
          W.KLoc = SMRange(At, At);
        } else {
          break;
        }
      }
      S.Node = std::move(W);
      return true;
    }
    if (consumeKeyword("TRACE")) {
      std::optional<std::string> P = string("a prompt string after TRACE");
      if (!P)
        return false;
      S.Node = TraceStmt{*P};
      return true;
    }
    if (consumeKeyword("INSERT")) {
      InsertStmt I;
      if (!expectKeyword("INTO", "INSERT") || !editTable("INSERT INTO") ||
          !expectKeyword("VALUES", "INSERT INTO edges"))
        return false;
      do {
        I.RowLocs.push_back(range(Cur));
        if (!expectPunct("(", "to open a VALUES row"))
          return false;
        Assignments Row;
        if (!assignments(Row) || !expectPunct(")", "to close the VALUES row"))
          return false;
        I.Rows.push_back(std::move(Row));
      } while (consumePunct(","));
      if (!optLayer(I.Layer))
        return false;
      if (consumeKeyword("MODE")) {
        std::optional<std::string> M = name("a mode name after MODE");
        if (!M)
          return false;
        I.Mode = *M;
      }
      S.Node = std::move(I);
      return true;
    }
    if (consumeKeyword("DELETE")) {
      DeleteStmt D;
      if (!expectKeyword("FROM", "DELETE") || !editTable("DELETE FROM") ||
          !expectKeyword("WHERE", "DELETE FROM edges") || !where(D.Where))
        return false;
      S.Node = std::move(D);
      return true;
    }
    if (consumeKeyword("UPDATE")) {
      UpdateStmt U;
      if (!editTable("UPDATE") || !expectKeyword("SET", "UPDATE edges") ||
          !assignments(U.Set) || !expectKeyword("WHERE", "the SET list") ||
          !where(U.Where))
        return false;
      S.Node = std::move(U);
      return true;
    }
    if (consumeKeyword("CREATE")) {
      CreateRelationStmt C;
      if (!expectKeyword("RELATION", "CREATE"))
        return false;
      std::optional<std::string> N =
          name("a relation name after CREATE RELATION");
      if (!N || !expectKeyword("AS", "the relation name"))
        return false;
      // The {entity} placeholder is the verifier's check, at this token.
      Token At = Cur;
      std::optional<std::string> T = string("a template string after AS");
      if (!T)
        return false;
      C.Name = *N;
      C.Template = *T;
      C.TemplateLoc = range(At);
      S.Node = std::move(C);
      return true;
    }
    if (consumeKeyword("COMPILE")) {
      CompileStmt C;
      if (!expectKeyword("CURRENT", "COMPILE") ||
          !expectKeyword("INTO", "COMPILE CURRENT"))
        return false;
      static constexpr StringLiteral Targets[] = {"vindex", "model"};
      std::optional<std::string> T =
          choice(Targets, "VINDEX or MODEL after INTO");
      if (!T)
        return false;
      C.Target = *T;
      std::optional<std::string> P =
          string("a path string after INTO " + StringRef(*T).upper());
      if (!P)
        return false;
      C.Path = *P;
      if (C.Target == "model") {
        if (!expectKeyword("FORMAT", "the model path"))
          return false;
        std::optional<std::string> F =
            choice(schema::Formats, "GGUF or SAFETENSORS after FORMAT");
        if (!F)
          return false;
        C.Format = *F;
        // TYPE after any FORMAT: the verifier says it is GGUF's alone.
        if (consumeKeyword("TYPE")) {
          std::optional<std::string> Ty =
              choice(schema::GGUFTypes, "a GGUF type after TYPE");
          if (!Ty)
            return false;
          C.Type = *Ty;
        }
      }
      S.Node = std::move(C);
      return true;
    }
    if (consumeKeyword("BEGIN")) {
      if (!expectKeyword("PATCH", "BEGIN"))
        return false;
      std::optional<std::string> N = string("a patch name after BEGIN PATCH");
      if (!N)
        return false;
      S.Node = BeginPatchStmt{*N};
      return true;
    }
    if (consumeKeyword("SAVE")) {
      if (!expectKeyword("PATCH", "SAVE"))
        return false;
      SavePatchStmt Sv;
      if (Cur.Kind == Tok::String) {
        Sv.Path = Cur.Value;
        advance();
      }
      S.Node = std::move(Sv);
      return true;
    }
    if (consumeKeyword("APPLY")) {
      if (!expectKeyword("PATCH", "APPLY"))
        return false;
      std::optional<std::string> P = string("a path string after APPLY PATCH");
      if (!P)
        return false;
      S.Node = ApplyPatchStmt{*P};
      return true;
    }
    unexpected("a statement (SELECT, DESCRIBE, SHOW, INFER, WALK, TRACE, "
               "INSERT, DELETE, UPDATE, CREATE, COMPILE, BEGIN, SAVE or APPLY)",
               StatementKeywords);
    return false;
  }

  /// INSERT, DELETE and UPDATE edit edges only.
  bool editTable(StringRef After) {
    if (isKeyword("edges")) {
      advance();
      return true;
    }
    if (isKeyword("features") || isKeyword("entities")) {
      error(Cur, After + " takes edges only, not '" + Cur.Text + "'");
      return false;
    }
    unexpected("EDGES after " + After, {"EDGES"});
    return false;
  }

  bool select(Statement &S) {
    SelectStmt Sel;
    if (!consumePunct("*")) {
      do {
        std::optional<std::string> C =
            column("a column name or '*' after SELECT");
        if (!C)
          return false;
        Sel.Columns.push_back(*C);
      } while (consumePunct(","));
    }
    if (!expectKeyword("FROM", "the column list"))
      return false;
    std::optional<Table> T = table("EDGES, FEATURES or ENTITIES after FROM");
    if (!T)
      return false;
    Sel.From = *T;
    if (consumeKeyword("NEAREST")) {
      if (!expectKeyword("TO", "NEAREST"))
        return false;
      std::optional<std::string> E =
          string("an entity string after NEAREST TO");
      if (!E || !optLayer(Sel.Layer))
        return false;
      Sel.Nearest = *E;
    }
    if (consumeKeyword("WHERE") && !where(Sel.Where))
      return false;
    if (consumeKeyword("ORDER")) {
      if (!expectKeyword("BY", "ORDER"))
        return false;
      do {
        OrderKey K;
        std::optional<std::string> C = column("a column name after ORDER BY");
        if (!C)
          return false;
        K.Column = *C;
        if (consumeKeyword("DESC"))
          K.Descending = true;
        else
          consumeKeyword("ASC");
        Sel.OrderBy.push_back(K);
      } while (consumePunct(","));
    }
    if (consumeKeyword("LIMIT")) {
      std::optional<int64_t> N = signedInteger("a row count after LIMIT");
      if (!N)
        return false;
      Sel.Limit = *N;
    }
    S.Node = std::move(Sel);
    return true;
  }

  Lexer Lex;
  Token Cur;
  /// Open parentheses of the WHERE expression being parsed.
  unsigned ParenDepth = 0;
  /// The columns the statement being parsed names (Statement::Columns).
  std::vector<ColumnRef> Columns;
};

} // namespace

std::optional<std::vector<Statement>>
parseScript(SourceMgr &SM, unsigned BufferID, mlir::MLIRContext &Ctx,
            std::vector<Statement> *Clean) {
  return Parser(SM, BufferID, Ctx).parse(Clean);
}

} // namespace vindex::lql
