//===- AtomicOutputTest.cpp - Outputs appear whole or not at all ----------===//
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/OutputFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <csignal>
#include <cstdlib>
#include <optional>

using namespace llvm;
using namespace vindex;

namespace {

class AtomicOutputTest : public ::testing::Test {
protected:
  // A death test's child runs the test again from the start in a fresh
  // process (threadsafe style): it finds the parent's directory here.
  static constexpr const char *kRootVar = "VINDEX_ATOMIC_OUTPUT_TEST_DIR";
  void SetUp() override {
    if (const char *Dir = std::getenv(kRootVar))
      Root = Dir;
    else
      ASSERT_FALSE(sys::fs::createUniqueDirectory("atomic-output", Root));
  }
  void TearDown() override {
    ::unsetenv(kRootVar);
    sys::fs::remove_directories(Root);
  }
  void shareRootWithChild() { ::setenv(kRootVar, Root.c_str(), 1); }

  std::string path(StringRef Name) const {
    SmallString<256> P(Root);
    sys::path::append(P, Name);
    return P.str().str();
  }
  /// The names in Root, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> Names;
    std::error_code EC;
    for (sys::fs::directory_iterator It(Root, EC), End; It != End && !EC;
         It.increment(EC))
      Names.push_back(sys::path::filename(It->path()).str());
    llvm::sort(Names);
    return Names;
  }
  std::string contents(StringRef Path) const {
    ErrorOr<std::unique_ptr<MemoryBuffer>> B = MemoryBuffer::getFile(Path);
    return B ? (*B)->getBuffer().str() : "<unreadable>";
  }

  /// Starts a directory and a file output, with a file and a subdirectory
  /// in the directory, in the order asked, and leaves them uncommitted.
  void startOutputs(bool FileFirst) {
    std::optional<AtomicFile> F;
    if (FileFirst)
      F.emplace(cantFail(AtomicFile::create(path("out.gguf"))));
    auto *D = new AtomicDirectory(cantFail(
        AtomicDirectory::create(path("out.vindex"), isReplaceableVindex)));
    if (!FileFirst)
      F.emplace(cantFail(AtomicFile::create(path("out.gguf"))));
    cantFail(F->out().write(arrayRefFromStringRef("partial")));
    ASSERT_FALSE(sys::fs::create_directories(D->file("tensors")));
    cantFail(writeFileAtomically(D->file("tensors/layer-000.bin"), "x"));
    cantFail(writeFileAtomically(D->file("config.json"), "{}"));
    new AtomicFile(std::move(*F)); // both outlive this function, uncommitted
  }

  /// Starts the outputs in a fresh process (a death test's child, in the
  /// threadsafe style) that Sig then kills (SIGABRT: abort()), and checks
  /// that it dies of Sig leaving nothing behind.
  void expectKilledCleanly(bool FileFirst, int Sig) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    shareRootWithChild();
    EXPECT_EXIT(
        {
          startOutputs(FileFirst);
          if (Sig == SIGABRT)
            std::abort();
          std::raise(Sig);
        },
        ::testing::KilledBySignal(Sig), "");
    EXPECT_EQ(entries(), std::vector<std::string>{});
  }

  SmallString<256> Root;
};

TEST_F(AtomicOutputTest, FileAppearsOnCommitOnly) {
  {
    AtomicFile F = cantFail(AtomicFile::create(path("a.bin")));
    cantFail(F.out().write(arrayRefFromStringRef("abandoned")));
  }
  EXPECT_EQ(entries(), std::vector<std::string>{});
  cantFail(writeFileAtomically(path("a.bin"), "one"));
  cantFail(writeFileAtomically(path("a.bin"), "two")); // replaces
  EXPECT_EQ(entries(), std::vector<std::string>{"a.bin"});
  EXPECT_EQ(contents(path("a.bin")), "two");
}

TEST_F(AtomicOutputTest, DirectoryAppearsOnCommitOnly) {
  {
    AtomicDirectory D = cantFail(
        AtomicDirectory::create(path("v.vindex"), isReplaceableVindex));
    cantFail(writeFileAtomically(D.file("manifest.vfb"), "abandoned"));
  }
  EXPECT_EQ(entries(), std::vector<std::string>{});
  for (StringRef Text : {"one", "two"}) { // the second replaces the first
    AtomicDirectory D = cantFail(
        AtomicDirectory::create(path("v.vindex"), isReplaceableVindex));
    cantFail(writeFileAtomically(D.file("manifest.vfb"), Text));
    cantFail(D.commit());
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"v.vindex"});
  EXPECT_EQ(contents(path("v.vindex/manifest.vfb")), "two");
}

// A process killed while writing leaves neither temporary directories nor
// temporary files behind, whichever output it started first, and still dies
// of the signal: an interrupt, a termination, an abort.
using AtomicOutputDeathTest = AtomicOutputTest;

TEST_F(AtomicOutputDeathTest, InterruptRemovesTemporaries) {
  expectKilledCleanly(/*FileFirst=*/true, SIGINT);
}

TEST_F(AtomicOutputDeathTest, TerminateRemovesTemporaries) {
  expectKilledCleanly(/*FileFirst=*/false, SIGTERM);
}

TEST_F(AtomicOutputDeathTest, AbortRemovesTemporaries) {
  expectKilledCleanly(/*FileFirst=*/false, SIGABRT);
}

} // namespace
