//===- MappedFile.cpp -----------------------------------------------------===//
#include "vindex/Support/MappedFile.h"

#include "vindex/Support/Error.h"

#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Process.h"

#include <cerrno>
#include <sys/mman.h>
#include <unistd.h>

using namespace llvm;

namespace vindex {

Expected<std::unique_ptr<MappedFile>> MappedFile::open(StringRef Path) {
  int FD;
  if (std::error_code EC = sys::fs::openFileForRead(Path, FD))
    return fileError(Path, "cannot open: {0}", EC.message());
  sys::fs::file_status Status;
  if (std::error_code EC = sys::fs::status(FD, Status)) {
    sys::Process::SafelyCloseFileDescriptor(FD);
    return fileError(Path, "cannot stat: {0}", EC.message());
  }
  if (Status.type() != sys::fs::file_type::regular_file) {
    sys::Process::SafelyCloseFileDescriptor(FD);
    return fileError(Path, "not a regular file");
  }
  std::unique_ptr<MappedFile> File(new MappedFile());
  File->Path = Path.str();
  File->Size = Status.getSize();
  if (File->Size > 0) {
    std::error_code EC;
    File->Region = sys::fs::mapped_file_region(
        sys::fs::convertFDToNativeFile(FD),
        sys::fs::mapped_file_region::readonly, File->Size, 0, EC);
    if (EC) {
      sys::Process::SafelyCloseFileDescriptor(FD);
      return fileError(Path, "cannot map: {0}", EC.message());
    }
  }
  File->FD = FD;
  return std::move(File);
}

Error MappedFile::readInto(uint64_t Offset,
                           MutableArrayRef<uint8_t> Dst) const {
  while (!Dst.empty()) {
    ssize_t N = ::pread(FD, Dst.data(), Dst.size(), Offset);
    if (N < 0 && errno == EINTR)
      continue;
    if (N < 0)
      return fileError(
          Path, "read failed: {0}",
          std::error_code(errno, std::generic_category()).message());
    if (N == 0)
      return fileError(Path, "read failed: the file ends at byte {0}", Offset);
    Dst = Dst.drop_front(N);
    Offset += N;
  }
  return Error::success();
}

MappedFile::~MappedFile() {
  if (FD >= 0)
    sys::Process::SafelyCloseFileDescriptor(FD);
}

// madvise works on whole pages: round the range inwards for dropping (never
// drop a page another tensor is still reading) and outwards for prefetching.
static void adviseRange(const MappedFile &F, uint64_t Offset, uint64_t Length,
                        int Advice, bool Inwards) {
  if (F.size() == 0 || Length == 0)
    return;
  uint64_t Page = sys::Process::getPageSizeEstimate();
  uintptr_t Base = reinterpret_cast<uintptr_t>(F.bytes().data());
  uintptr_t Begin = Base + Offset, End = Base + Offset + Length;
  if (Inwards) {
    Begin = alignTo(Begin, Page);
    End = alignDown(End, Page);
  } else {
    Begin = alignDown(Begin, Page);
    End = alignTo(End, Page);
    End = std::min<uintptr_t>(End, alignTo(Base + F.size(), Page));
  }
  if (End > Begin)
    ::madvise(reinterpret_cast<void *>(Begin), End - Begin, Advice);
}

void MappedFile::willNeed(uint64_t Offset, uint64_t Length) const {
  adviseRange(*this, Offset, Length, MADV_WILLNEED, /*Inwards=*/false);
}

void MappedFile::dropPages(uint64_t Offset, uint64_t Length) const {
  adviseRange(*this, Offset, Length, MADV_DONTNEED, /*Inwards=*/true);
}

} // namespace vindex
