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

Expected<std::unique_ptr<MappedFile>> MappedFile::open(StringRef Path,
                                                       Residency Where) {
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
  File->Data = reinterpret_cast<const uint8_t *>(File->Region.const_data());
  if (Where == Residency::Memory && File->Size > 0)
    if (Error E = File->copyToMemory())
      return std::move(E);
  return std::move(File);
}

Error MappedFile::copyToMemory() {
  // Whole 2 MiB pages, so that the last one can be huge too.
  const size_t Huge = size_t(2) << 20;
  size_t Bytes = alignTo(Size, Huge);
  void *P = ::mmap(nullptr, Bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (P == MAP_FAILED)
    return fileError(Path, "cannot allocate {0} bytes to load it: {1}", Bytes,
                     std::error_code(errno, std::generic_category()).message());
  ::madvise(P, Bytes, MADV_HUGEPAGE); // a hint: without THP, plain pages
  Copy = P;
  CopySize = Bytes;
  if (Error E = readInto(0, {static_cast<uint8_t *>(P), size_t(Size)}))
    return E;
  Data = static_cast<const uint8_t *>(P);
  // The mapping is no longer read: its page-table entries go.
  Region.unmap();
  return Error::success();
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
  if (Copy)
    ::munmap(Copy, CopySize);
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

// A copy in memory is resident already, and MADV_DONTNEED on anonymous
// memory would zero it: both hints are for mappings only.
void MappedFile::willNeed(uint64_t Offset, uint64_t Length) const {
  if (Copy)
    return;
  adviseRange(*this, Offset, Length, MADV_WILLNEED, /*Inwards=*/false);
}

void MappedFile::dropPages(uint64_t Offset, uint64_t Length) const {
  if (Copy)
    return;
  adviseRange(*this, Offset, Length, MADV_DONTNEED, /*Inwards=*/true);
}

} // namespace vindex
