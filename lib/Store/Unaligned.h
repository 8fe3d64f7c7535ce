//===- Unaligned.h - Reading the V-index flatbuffers safely -----*- C++ -*-===//
//
// flatbuffers' Verifier checks a vector's length word for 4-byte alignment
// but not its elements for theirs, so a crafted file can place a [ulong] or
// [long] vector at an address that is not a multiple of 8, and reading it
// through the vector's iterator is a misaligned load (undefined behaviour;
// the V-index fuzzer found it). These read the elements bytewise; and
// verifierOptions() gives the verifier limits that fit a large model.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_STORE_UNALIGNED_H
#define VINDEX_LIB_STORE_UNALIGNED_H

#include "flatbuffers/flatbuffers.h"

#include <cstring>

namespace vindex {

/// The verifier's limits for the V-index's flatbuffers (manifest, patches,
/// labels): flatbuffers' default of a million tables would call the labels
/// of a model with more than a million features corrupt (62 layers of
/// 21,504), so the bound is the one the compiled tokenizer uses.
inline flatbuffers::Verifier::Options verifierOptions() {
  return flatbuffers::Verifier::Options{/*max_depth=*/64,
                                        /*max_tables=*/1u << 30};
}

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
