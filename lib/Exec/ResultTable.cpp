//===- ResultTable.cpp - Printing results ---------------------------------===//
#include "ResultTable.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"

#include <algorithm>

using namespace llvm;

namespace vindex::lql {

namespace {

std::string cellText(const Cell &C, bool CSV) {
  if (const auto *I = std::get_if<int64_t>(&C))
    return std::to_string(*I);
  if (const auto *D = std::get_if<double>(&C)) {
    char Buf[64];
    snprintf(Buf, sizeof(Buf), CSV ? "%.9g" : "%.4f", *D);
    return Buf;
  }
  if (const auto *B = std::get_if<bool>(&C))
    return *B ? "true" : "false";
  return std::get<std::string>(C);
}

json::Value cellJSON(const Cell &C) {
  if (const auto *I = std::get_if<int64_t>(&C))
    return *I;
  if (const auto *D = std::get_if<double>(&C))
    return *D;
  if (const auto *B = std::get_if<bool>(&C))
    return *B;
  return std::get<std::string>(C);
}

std::string quoteCSV(StringRef S) {
  std::string Q = "\"";
  for (char C : S)
    Q += C == '"' ? std::string("\"\"") : std::string(1, C);
  return Q + "\"";
}

/// Display width of UTF-8 text: code points, not bytes.
size_t width(StringRef S) {
  return count_if(S, [](char C) { return (uint8_t(C) & 0xC0) != 0x80; });
}

} // namespace

void printResult(const ResultTable &R, ResultFormat Format, raw_ostream &OS) {
  if (Format == ResultFormat::JSON) {
    json::Array Rows;
    for (const auto &Row : R.Rows) {
      json::Object O;
      for (size_t C = 0; C < R.Columns.size(); ++C)
        O[R.Columns[C]] = cellJSON(Row[C]);
      Rows.push_back(std::move(O));
    }
    OS << json::Value(json::Object{{"statement", R.Statement},
                                   {"columns", json::Array(R.Columns)},
                                   {"rows", std::move(Rows)}})
       << "\n";
    return;
  }
  if (Format == ResultFormat::CSV) {
    ListSeparator LS(",");
    for (const std::string &C : R.Columns)
      OS << LS << C;
    OS << "\n";
    for (const auto &Row : R.Rows) {
      ListSeparator LS(",");
      for (const Cell &C : Row)
        OS << LS
           << (std::holds_alternative<std::string>(C)
                   ? quoteCSV(std::get<std::string>(C))
                   : cellText(C, true));
      OS << "\n";
    }
    return;
  }
  if (R.Vertical) {
    size_t W = 0;
    for (const std::string &C : R.Columns)
      W = std::max(W, C.size());
    for (const auto &Row : R.Rows)
      for (size_t C = 0; C < R.Columns.size(); ++C)
        OS << "  " << left_justify(R.Columns[C], W) << "  "
           << cellText(Row[C], false) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> Text;
  std::vector<size_t> W;
  for (const std::string &C : R.Columns)
    W.push_back(C.size());
  for (const auto &Row : R.Rows) {
    Text.emplace_back();
    for (size_t C = 0; C < Row.size(); ++C) {
      Text.back().push_back(cellText(Row[C], false));
      W[C] = std::max(W[C], width(Text.back().back()));
    }
  }
  // Text columns are left-aligned, numbers right-aligned (headers too).
  std::vector<bool> Right(R.Columns.size(), false);
  if (!R.Rows.empty())
    for (size_t C = 0; C < R.Columns.size(); ++C)
      Right[C] = !std::holds_alternative<std::string>(R.Rows[0][C]);
  auto Line = [&](ArrayRef<std::string> Cells) {
    std::string L;
    for (size_t C = 0; C < Cells.size(); ++C) {
      std::string Pad(W[C] - std::min(W[C], width(Cells[C])), ' ');
      L += "  ";
      L += Right[C] ? Pad + Cells[C] : Cells[C] + Pad;
    }
    OS << StringRef(L).rtrim() << "\n";
  };
  Line(R.Columns);
  for (const auto &T : Text)
    Line(T);
  OS << "  (" << R.Rows.size() << (R.Rows.size() == 1 ? " row" : " rows")
     << ")\n";
}

} // namespace vindex::lql
