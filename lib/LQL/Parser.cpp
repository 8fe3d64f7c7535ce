//===- Parser.cpp - LQL lexer and parser ----------------------------------===//
//
// Keywords are case-insensitive; strings take single or double quotes with
// backslash escapes; `--` and `/* */` are comments; statements are separated
// by `;`. After an error the parser skips to the next `;` and goes on, so
// that one run reports every error of a script.
//
//===----------------------------------------------------------------------===//
#include "vindex/LQL/Parser.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

using namespace llvm;

namespace vindex::lql {

namespace {

enum class Tok { Eof, Ident, String, Integer, Semi, Error };

struct Token {
  Tok Kind = Tok::Eof;
  StringRef Text;    ///< The source text of the token.
  std::string Value; ///< Unescaped string contents.
  SMLoc loc() const { return SMLoc::getFromPointer(Text.data()); }
};

class Lexer {
public:
  Lexer(SourceMgr &SM, unsigned Buf)
      : SM(SM), Text(SM.getMemoryBuffer(Buf)->getBuffer()), Cur(Text.begin()) {}

  Token next() {
    skipSpaceAndComments();
    Token T;
    const char *Start = Cur;
    if (Cur == Text.end()) {
      T.Text = StringRef(Cur, 0);
      return T;
    }
    char C = *Cur;
    if (C == ';') {
      ++Cur;
      T.Kind = Tok::Semi;
    } else if (C == '\'' || C == '"') {
      return lexString();
    } else if (isDigit(C)) {
      while (Cur != Text.end() && isDigit(*Cur))
        ++Cur;
      T.Kind = Tok::Integer;
    } else if (isAlpha(C) || C == '_') {
      while (Cur != Text.end() && (isAlnum(*Cur) || *Cur == '_'))
        ++Cur;
      T.Kind = Tok::Ident;
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

  void error(SMLoc Loc, const Twine &Msg, ArrayRef<SMRange> Ranges = {}) {
    SM.PrintMessage(Loc, SourceMgr::DK_Error, Msg, Ranges);
    ++Errors;
  }
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
    while (Cur != Text.end() && *Cur != Quote) {
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
  StringRef Text;
  const char *Cur;
  unsigned Errors = 0;
};

class Parser {
public:
  Parser(SourceMgr &SM, unsigned Buf) : Lex(SM, Buf) { advance(); }

  std::optional<std::vector<Statement>> parse() {
    std::vector<Statement> Out;
    while (Cur.Kind != Tok::Eof) {
      if (Cur.Kind == Tok::Semi) {
        advance();
        continue;
      }
      if (std::optional<Statement> S = statement()) {
        Out.push_back(std::move(*S));
        if (Cur.Kind != Tok::Semi && Cur.Kind != Tok::Eof) {
          unexpected("';' or the end of the script");
          recover();
        }
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
  void unexpected(const Twine &Want) {
    if (Cur.Kind == Tok::Error)
      return; // already reported by the lexer
    std::string Got = Cur.Kind == Tok::Eof ? "end of script"
                                           : "'" + Cur.Text.str() + "'";
    Lex.error(Cur.loc(), "expected " + Want + ", found " + Got, range(Cur));
  }
  bool isKeyword(StringRef K) const {
    return Cur.Kind == Tok::Ident && Cur.Text.equals_insensitive(K);
  }
  bool consumeKeyword(StringRef K) {
    if (!isKeyword(K))
      return false;
    advance();
    return true;
  }
  std::optional<std::string> string(StringRef What) {
    if (Cur.Kind != Tok::String) {
      unexpected(What);
      return std::nullopt;
    }
    std::string V = Cur.Value;
    advance();
    return V;
  }
  std::optional<unsigned> integer(StringRef What) {
    unsigned V;
    if (Cur.Kind != Tok::Integer || Cur.Text.getAsInteger(10, V)) {
      unexpected(What);
      return std::nullopt;
    }
    advance();
    return V;
  }

  std::optional<Statement> statement() {
    Statement S;
    S.Loc = Cur.loc();
    if (consumeKeyword("INFER")) {
      InferStmt I;
      std::optional<std::string> P = string("a prompt string after INFER");
      if (!P)
        return std::nullopt;
      I.Prompt = *P;
      while (true) {
        if (consumeKeyword("TOP")) {
          std::optional<unsigned> N = integer("a count after TOP");
          if (!N)
            return std::nullopt;
          I.Top = *N;
        } else if (consumeKeyword("GENERATE")) {
          std::optional<unsigned> N = integer("a token count after GENERATE");
          if (!N)
            return std::nullopt;
          I.Generate = *N;
        } else {
          break;
        }
      }
      S.Node = I;
      return S;
    }
    if (consumeKeyword("WALK")) {
      WalkStmt W;
      std::optional<std::string> P = string("a prompt string after WALK");
      if (!P)
        return std::nullopt;
      W.Prompt = *P;
      while (true) {
        if (consumeKeyword("TOP")) {
          std::optional<unsigned> N = integer("a count after TOP");
          if (!N)
            return std::nullopt;
          W.Top = *N;
        } else if (consumeKeyword("WITH")) {
          if (!consumeKeyword("K")) {
            unexpected("K after WITH");
            return std::nullopt;
          }
          SMLoc At = Cur.loc();
          std::optional<unsigned> N = integer("a feature count after WITH K");
          if (!N)
            return std::nullopt;
          if (*N == 0) {
            Lex.error(At, "WITH K needs at least one feature");
            return std::nullopt;
          }
          W.K = *N;
        } else {
          break;
        }
      }
      S.Node = W;
      return S;
    }
    unexpected("a statement (INFER or WALK)");
    return std::nullopt;
  }

  Lexer Lex;
  Token Cur;
};

} // namespace

std::optional<std::vector<Statement>> parseScript(SourceMgr &SM,
                                                  unsigned BufferID) {
  return Parser(SM, BufferID).parse();
}

} // namespace vindex::lql
