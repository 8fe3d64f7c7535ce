//===- Unaligned.h - Reading 8-byte flatbuffer vectors safely ---*- C++ -*-===//
//
// flatbuffers' Verifier checks a vector's length word for 4-byte alignment
// but not its elements for theirs, so a crafted file can place a [ulong] or
// [long] vector at an address that is not a multiple of 8, and reading it
// through the vector's iterator is a misaligned load (undefined behaviour;
// the V-index fuzzer found it). These read the elements bytewise.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_STORE_UNALIGNED_H
#define VINDEX_LIB_STORE_UNALIGNED_H

#include "flatbuffers/flatbuffers.h"

#include <cstring>

namespace vindex {

/// Element I of V (flatbuffers are little-endian, as every host we build).
template <typename T> T elementAt(const flatbuffers::Vector<T> &V, size_t I) {
  T Out;
  std::memcpy(&Out, V.Data() + I * sizeof(T), sizeof(T));
  return Out;
}

/// Appends V's elements to Out (nothing for a null vector).
template <typename T, typename Container>
void appendElements(const flatbuffers::Vector<T> *V, Container &Out) {
  if (!V)
    return;
  for (size_t I = 0; I < V->size(); ++I)
    Out.push_back(elementAt(*V, I));
}

} // namespace vindex

#endif // VINDEX_LIB_STORE_UNALIGNED_H
