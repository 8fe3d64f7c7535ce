//===- TestFixtures.h - The unit tests' access to test/fixtures -*- C++ -*-===//
//
// One definition of how a unit test names a fixture file and reads a JSON
// reference, shared by the tests that load the fixture models.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_TEST_UNIT_TESTFIXTURES_H
#define VINDEX_TEST_UNIT_TESTFIXTURES_H

#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include "gtest/gtest.h"

#include <string>

namespace vindex::test {

/// The path of Rel under test/fixtures.
inline std::string fixture(const llvm::Twine &Rel) {
  return (llvm::Twine(VINDEX_TEST_FIXTURES) + "/" + Rel).str();
}

/// The JSON file at Path, parsed (a failure is a test failure).
inline llvm::json::Value readJson(const std::string &Path) {
  auto Buf = llvm::MemoryBuffer::getFile(Path);
  EXPECT_TRUE(bool(Buf)) << Path;
  llvm::Expected<llvm::json::Value> V = llvm::json::parse((*Buf)->getBuffer());
  EXPECT_TRUE(bool(V)) << Path;
  return std::move(*V);
}

} // namespace vindex::test

#endif // VINDEX_TEST_UNIT_TESTFIXTURES_H
